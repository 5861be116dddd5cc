#!/usr/bin/env bash
# Emacs's lock files: `.#FILE` is a symlink whose text is `user@host.pid:boottime`; it never points
# at anything real. Taking the lock is creating the symlink (EEXIST if someone holds it), reading
# it is readlink, releasing it is unlink.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup emacs-lock "$@"

printf 'being edited\n' >"$WORK/file.txt"
lock="$WORK/.#file.txt"
text='user@host.example.com.12345:1700000000'

ln -s "$text" "$lock" || fail "creating the lock symlink failed"
[ -L "$lock" ] || fail "$lock is not a symlink"
[ ! -e "$lock" ] || fail "$lock resolves to something; it must dangle"
got=$(readlink "$lock") || fail "readlink of the lock failed"
[ "$got" = "$text" ] || fail "readlink gives '$got', not '$text'"
sync_backing
got=$(readlink "$WORK_BACKING/.#file.txt") || fail "the lock is not a symlink in the backing folder"
[ "$got" = "$text" ] || fail "the backing folder's lock says '$got', not '$text'"
size=$(stat -c %s "$lock")
[ "$size" = "${#text}" ] || fail "lstat size of the lock is $size, not ${#text} (the length of its text)"
listing=$(ls -A "$WORK")
grep -qxF '.#file.txt' <<<"$listing" || fail "the lock is not listed: $listing"

# Another Emacs trying to take the lock must get EEXIST.
if ln -s 'other@host.999:1' "$lock" 2>"$LOCAL/err"; then
  fail "a second lock symlink replaced the first one"
fi
grep -q 'File exists' "$LOCAL/err" || fail "second lock failed, but not with EEXIST: $(cat "$LOCAL/err")"
[ "$(readlink "$lock")" = "$text" ] || fail "the lock text changed after a failed second lock"

# Odd characters in lock text survive exactly (Emacs puts user and host names there).
odd='ü s€r@höst name.1:2 '
ln -s "$odd" "$WORK/.#other"
[ "$(readlink "$WORK/.#other")" = "$odd" ] || fail "readlink of a lock with odd characters gives '$(readlink "$WORK/.#other")'"
rm "$WORK/.#other"

rm "$lock" || fail "removing the lock failed"
[ ! -L "$lock" ] || fail "the lock is still there after rm"
sync_backing
[ ! -L "$WORK_BACKING/.#file.txt" ] || fail "the lock is still in the backing folder after rm"
[ "$(cat "$WORK/file.txt")" = "being edited" ] || fail "the locked file changed"
# Taking the lock again after release works.
ln -s "$text" "$lock" || fail "taking the lock again failed"
rm "$lock"
echo "emacs-lock: ok"
