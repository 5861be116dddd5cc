# Sourced by the acceptance scripts: arguments, a work folder of their own, failure and cleanup.
# Usage (in a script): source "$(dirname "$0")/lib.sh"; acceptance_setup NAME "$@"
# Sets MOUNT, BACKING, WORK (inside the mount), WORK_BACKING (the same folder in the backing
# folder), NAME (WORK's name) and LOCAL (a scratch folder on local disk). All are removed on exit.

fail() {
  echo "FAIL [$SCRIPT_NAME]: $*" >&2
  exit 1
}

# Runs a command; on failure, prints its output and fails with the step's description.
step() {
  local what=$1
  shift
  local output
  if ! output=$("$@" 2>&1); then
    printf '%s\n' "$output" | tail -n 30 >&2
    fail "$what: \`$*\` exited non-zero"
  fi
  [ -z "$output" ] || printf '%s\n' "$output"
}

# `stat`-like listing of a tree, one line per entry, sorted: relative path, type, mode, size of
# files and symlinks, mtime in ns (symlinks excluded: whether their own mtime is kept is not
# what these scripts test), link text.
tree_listing() {
  (cd "$1" && find . -mindepth 1 \( -type d -printf '%P %y %m - %T@\n' \) \
    -o \( -type l -printf '%P %y - %s - %l\n' \) \
    -o -printf '%P %y %m %s %T@\n') | LC_ALL=C sort
}

# Fails unless `COMMAND EXPECTED` and `COMMAND ACTUAL` succeed and print the same, showing the
# difference. (Through files: a process substitution would hide a failing command from set -e.)
same_output() {
  local what=$1 command=$2 expected=$3 actual=$4
  "$command" "$expected" >"$LOCAL/expected.out" || fail "$what: $command $expected failed"
  "$command" "$actual" >"$LOCAL/actual.out" || fail "$what: $command $actual failed"
  if ! diff "$LOCAL/expected.out" "$LOCAL/actual.out" >&2; then
    fail "$what: $actual differs from $expected"
  fi
}

# Fails unless two trees list the same (path type mode size mtime target).
same_listing() { same_output "$1" tree_listing "$2" "$3"; }

cleanup() {
  local status=$?
  cd /
  if [ -n "${NAME:-}" ]; then
    rm -rf "${MOUNT:?}/$NAME" 2>/dev/null || true
    # What the mount could not remove (a broken mount) goes through the backing folder.
    [ ! -e "${BACKING:?}/$NAME" ] || rm -rf "${BACKING:?}/$NAME" || true
    [ ! -e "${MOUNT:?}/$NAME" ] || echo "warning: could not remove $MOUNT/$NAME" >&2
  fi
  [ -z "${LOCAL:-}" ] || rm -rf "$LOCAL"
  exit $status
}

# The backing folder is looked at only after the mount's changes reached it: coreutils
# `sync MOUNTPOINT` fsyncs the mountpoint, which a write-back mount answers once its journal
# drained (a no-op for mounts that write through).
sync_backing() { sync "$MOUNT" || fail "sync $MOUNT failed"; }

acceptance_setup() {
  SCRIPT_NAME=$1
  shift
  [ $# -eq 2 ] || { echo "usage: $SCRIPT_NAME.sh MOUNTPOINT BACKING_FOLDER" >&2; exit 2; }
  MOUNT=$(cd "$1" && pwd) || fail "no mountpoint $1"
  BACKING=$(cd "$2" && pwd) || fail "no backing folder $2"
  export LC_ALL=C TZ=UTC
  trap cleanup EXIT
  NAME="acceptance-$SCRIPT_NAME.$$"
  LOCAL=$(mktemp -d "${TMPDIR:-/tmp}/acceptance-$SCRIPT_NAME.XXXXXX")
  WORK="$MOUNT/$NAME"
  WORK_BACKING="$BACKING/$NAME"
  mkdir "$WORK" || fail "mkdir $WORK"
  sync_backing
  [ -d "$WORK_BACKING" ] || fail "$WORK does not show up in the backing folder as $WORK_BACKING"
}
