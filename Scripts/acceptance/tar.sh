#!/usr/bin/env bash
# GNU tar into and out of the mount, compared with GNU tar on local disk: a tree with symlinks,
# modes (0755, 0600, 0640, 0444, 0700 and 0750 folders) and nanosecond mtimes (pax format).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup tar "$@"

src="$LOCAL/src"
mkdir -p "$src/bin" "$src/etc/conf.d" "$src/private" "$src/shared"
printf '#!/bin/sh\necho tool\n' >"$src/bin/tool"
printf 'key=value\n' >"$src/etc/app.conf"
printf 'a=1\n' >"$src/etc/conf.d/a.conf"
printf 'token\n' >"$src/private/token"
printf 'read only\n' >"$src/shared/readme"
head -c 200000 /dev/urandom >"$src/shared/blob.bin"
: >"$src/shared/empty"
ln -s ../bin/tool "$src/shared/tool-link"
ln -s conf.d "$src/etc/conf-link"
ln -s /nonexistent/absolute "$src/dangling-absolute"
chmod 0755 "$src/bin/tool"
chmod 0600 "$src/private/token"
chmod 0640 "$src/etc/app.conf"
chmod 0444 "$src/shared/readme"
chmod 0700 "$src/private"
chmod 0750 "$src/etc"
touch -d '2020-02-02 02:02:02.123456789' "$src/etc/app.conf"
touch -d '2019-09-09 09:09:09.987654321' "$src/shared/blob.bin"
find "$src" -mindepth 1 -type d -exec touch -d '2018-08-08 08:08:08.080808080' {} +

tar_create() { tar --format=posix --sort=name --numeric-owner -cf "$@"; }
step "tar c on local disk" tar_create "$LOCAL/local.tar" -C "$src" .

# tar x: on local disk and into the mount, from the same archive.
mkdir "$LOCAL/local-x" "$WORK/x"
step "tar x on local disk" tar -xpf "$LOCAL/local.tar" -C "$LOCAL/local-x"
step "tar x into the mount" tar -xpf "$LOCAL/local.tar" -C "$WORK/x"
step "extracted trees (mount)" diff -r --no-dereference "$LOCAL/local-x" "$WORK/x"
sync_backing
step "extracted trees (backing folder)" diff -r --no-dereference "$LOCAL/local-x" "$WORK_BACKING/x"
modes() { (cd "$1" && find . -printf '%m %y %p %l\n' | LC_ALL=C sort); }
same_output "modes and types after tar x into the mount" modes "$LOCAL/local-x" "$WORK/x"
same_output "modes and types in the backing folder" modes "$LOCAL/local-x" "$WORK_BACKING/x"
same_listing "stat after tar x (mount)" "$LOCAL/local-x" "$WORK/x"
step "tar --compare against the mount" tar --compare -f "$LOCAL/local.tar" -C "$WORK/x"

# tar c out of the mount must list like tar c of the same tree on local disk.
step "tar c out of the mount" tar_create "$LOCAL/mount.tar" -C "$WORK/x" .
step "tar c of the local extraction" tar_create "$LOCAL/local-x.tar" -C "$LOCAL/local-x" .
listing() { tar --full-time --numeric-owner -tvf "$1" | sed 's/  */ /g'; }
same_output "tar tvf of the archive made from the mount" listing "$LOCAL/local-x.tar" "$LOCAL/mount.tar"
mkdir "$LOCAL/round-trip"
step "tar x of the archive made from the mount" tar -xpf "$LOCAL/mount.tar" -C "$LOCAL/round-trip"
same_output "modes after the round trip through the mount" modes "$LOCAL/local-x" "$LOCAL/round-trip"
same_listing "stat after the round trip" "$LOCAL/local-x" "$LOCAL/round-trip"
step "contents after the round trip" diff -r --no-dereference "$src" "$LOCAL/round-trip"
echo "tar: ok"
