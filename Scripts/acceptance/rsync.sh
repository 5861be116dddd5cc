#!/usr/bin/env bash
# rsync -a of a tree into the mount; a second rsync must find nothing to do (sizes, modes, and
# mtimes to the nanosecond: --modify-window=-1 compares nanoseconds, and without it rsync does not
# even set a time that is equal to the second), and the tree must match the source through the
# mount and in the backing folder.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup rsync "$@"

src="$LOCAL/src"
mkdir -p "$src/sub/deeper" "$src/private" "$src/empty-dir"
printf 'hello\n' >"$src/hello.txt"
printf '#!/bin/sh\necho run\n' >"$src/run.sh"
printf 'secret\n' >"$src/private/key"
: >"$src/sub/empty"
head -c 300000 /dev/urandom >"$src/sub/deeper/random.bin"
for i in $(seq 1 20); do printf 'line %s\n' "$i" >"$src/sub/file$i.txt"; done
ln -s sub/deeper/random.bin "$src/link-to-random"
ln -s 'dangling target' "$src/sub/dangling"
chmod 0755 "$src/run.sh" "$src/sub"
chmod 0600 "$src/private/key"
chmod 0700 "$src/private"
chmod 0644 "$src/hello.txt"
chmod 0640 "$src/sub/empty"
# Nanosecond mtimes, different per entry; directories last so their times stay.
touch -h -d '2021-03-04 05:06:07.123456789' "$src/hello.txt"
touch -h -d '2020-01-02 03:04:05.000000001' "$src/run.sh"
touch -h -d '2019-12-31 23:59:59.999999999' "$src/private/key"
touch -h -d '2022-06-07 08:09:10.555555555' "$src/sub/deeper/random.bin"
touch -h -d '2018-05-05 05:05:05.5' "$src/link-to-random"
find "$src" -mindepth 1 -type d -exec touch -d '2017-07-07 07:07:07.707070707' {} +

step "first rsync -a into the mount" rsync -a --modify-window=-1 "$src/" "$WORK/dst/"

changes=$(rsync -a --modify-window=-1 --itemize-changes "$src/" "$WORK/dst/" 2>&1) ||
  { printf '%s\n' "$changes" >&2; fail "second rsync -a exited non-zero"; }
if [ -n "$changes" ]; then
  printf '%s\n' "$changes" >&2
  fail "second rsync -a --itemize-changes is not empty: rsync found differences it had just copied"
fi

step "contents through the mount" diff -r --no-dereference "$src" "$WORK/dst"
sync_backing
step "contents in the backing folder" diff -r --no-dereference "$src" "$WORK_BACKING/dst"
same_listing "stat through the mount" "$src" "$WORK/dst"
same_listing "stat in the backing folder" "$src" "$WORK_BACKING/dst"

# An update: one changed file and one changed mode; rsync must transfer exactly those.
printf 'hello again\n' >"$src/hello.txt"
touch -d '2021-03-04 05:06:08.2' "$src/hello.txt"
chmod 0604 "$src/sub/file3.txt"
touch -d '2017-07-07 07:07:07.707070707' "$src"
step "rsync -a of an update" rsync -a --modify-window=-1 "$src/" "$WORK/dst/"
changes=$(rsync -a --modify-window=-1 --itemize-changes "$src/" "$WORK/dst/" 2>&1) || fail "third rsync exited non-zero: $changes"
[ -z "$changes" ] || { printf '%s\n' "$changes" >&2; fail "rsync after an update still finds differences"; }
sync_backing
step "updated contents in the backing folder" diff -r --no-dereference "$src" "$WORK_BACKING/dst"
same_listing "stat in the backing folder after the update" "$src" "$WORK_BACKING/dst"
echo "rsync: ok"
