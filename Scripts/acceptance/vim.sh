#!/usr/bin/env bash
# vim edits and saves an existing 0640 file, both ways vim saves: writing a new file and renaming
# it over the original (backupcopy=no, which then restores the mode with chmod), and rewriting the
# original in place (backupcopy=yes). Swap files, backup files (backupskip= since its default
# skips /tmp/*) and fsync all go through the mount.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup vim "$@"

file="$WORK/notes.txt"
printf 'first line\nsecond line\nthird line\n' >"$file"
chmod 0640 "$file"

# -Es -u NONE: silent Ex mode without any vimrc; -i NONE: no viminfo. Swap files stay on.
edit() {
  local backupcopy=$1 command=$2
  if ! output=$(timeout 60 vim -Es -u NONE -i NONE -N \
    -c "set backupcopy=$backupcopy backup backupskip= backupdir=. fsync" -c "$command" -c 'wq' "$file" 2>&1); then
    printf '%s\n' "$output" >&2
    fail "vim (backupcopy=$backupcopy) exited non-zero"
  fi
}

check() {
  local what=$1 expected=$2
  printf '%b' "$expected" >"$LOCAL/expected"
  sync_backing
  for view in "$file" "$WORK_BACKING/notes.txt"; do
    cmp -s "$LOCAL/expected" "$view" ||
      { diff "$LOCAL/expected" "$view" >&2 || true; fail "$what: wrong content in $view"; }
    mode=$(stat -c %a "$view")
    [ "$mode" = 640 ] || fail "$what: mode of $view is $mode, not 640"
  done
  [ ! -e "$WORK/.notes.txt.swp" ] || fail "$what: vim left its swap file behind"
  [ -f "$WORK/notes.txt~" ] || fail "$what: vim's backup file notes.txt~ is missing"
  rm -f "$WORK/notes.txt~"
}

edit no '%s/second/2nd/'
check "save by rename (backupcopy=no)" 'first line\n2nd line\nthird line\n'

edit yes 'normal Gofourth line'
check "save in place (backupcopy=yes)" 'first line\n2nd line\nthird line\nfourth line\n'

# A new file written by vim gets vim's default mode (0666 less the umask) and the text.
if ! output=$(timeout 60 vim -Es -u NONE -i NONE -N -c 'normal ihello from vim' -c 'wq' "$WORK/new.txt" 2>&1); then
  printf '%s\n' "$output" >&2
  fail "vim could not write a new file"
fi
sync_backing
[ "$(cat "$WORK_BACKING/new.txt")" = "hello from vim" ] || fail "new file written by vim has wrong content"
expected_mode=$(printf '%o' $((0666 & ~0$(umask))))
[ "$(stat -c %a "$WORK/new.txt")" = "$expected_mode" ] || fail "new file written by vim has mode $(stat -c %a "$WORK/new.txt"), not $expected_mode"
echo "vim: ok"
