#!/usr/bin/env bash
# git inside the mount: init (which probes chmod and symlinks), add, commit, status, checkout -b,
# log, gc; git fsck must be clean and git status empty at the end. git uses O_EXCL lock files,
# rename over existing files, link() with a rename fallback, chmod +x, symlinks and lstat of
# every file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup git "$@"

export GIT_CONFIG_NOSYSTEM=1 HOME="$LOCAL" GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com
export GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.com
repo="$WORK/repo"
g() { git -C "$repo" "$@"; }

step "git init" git init -q -b main "$repo"
# git init probes the file system: these are false when chmod or symlinks do not work.
[ "$(g config core.filemode)" = true ] || fail "git init found chmod not working (core.filemode=$(g config core.filemode))"
[ "$(g config --type=bool core.symlinks 2>/dev/null || echo true)" = true ] || fail "git init found symlinks not working"

mkdir -p "$repo/src/lib"
printf '# project\n' >"$repo/README.md"
printf '#!/bin/sh\necho built\n' >"$repo/build.sh"
chmod +x "$repo/build.sh"
for i in $(seq 1 30); do printf 'int f%d(void) { return %d; }\n' "$i" "$i" >"$repo/src/lib/f$i.c"; done
ln -s src/lib "$repo/lib-link"
step "git add" g add -A
step "git commit" g commit -q -m "first commit"
[ -z "$(g status --porcelain)" ] || fail "git status not clean after the first commit: $(g status --porcelain)"
modes=$(g ls-files -s build.sh lib-link | awk '{print $1, $4}')
[ "$modes" = $'100755 build.sh\n120000 lib-link' ] || fail "git recorded wrong modes: $modes"

step "git checkout -b" g checkout -q -b feature
printf 'more\n' >>"$repo/README.md"
g mv src/lib/f1.c src/lib/first.c
rm "$repo/src/lib/f2.c"
chmod -x "$repo/build.sh"
step "git commit -a" g commit -q -a -m "second commit"
step "git checkout main" g checkout -q main
[ -x "$repo/build.sh" ] || fail "checkout main did not restore the executable bit"
[ -f "$repo/src/lib/f2.c" ] || fail "checkout main did not restore a deleted file"
step "git checkout feature" g checkout -q feature
[ ! -x "$repo/build.sh" ] || fail "checkout feature did not clear the executable bit"
count=$(g log --oneline | wc -l)
[ "$count" = 2 ] || fail "git log shows $count commits, not 2"
step "git status" g status
step "git gc" g gc -q --prune=now
step "git fsck" g fsck --full --strict --no-dangling
[ -z "$(g status --porcelain)" ] || fail "git status not clean at the end: $(g status --porcelain)"
sync_backing
# The backing folder holds the same, healthy repository.
step "git fsck in the backing folder" git -C "$WORK_BACKING/repo" fsck --full --strict --no-dangling
[ -z "$(git -C "$WORK_BACKING/repo" status --porcelain)" ] || fail "git status in the backing folder is not clean"
[ "$(git -C "$WORK_BACKING/repo" rev-parse HEAD)" = "$(g rev-parse HEAD)" ] || fail "HEAD differs in the backing folder"
echo "git: ok"
