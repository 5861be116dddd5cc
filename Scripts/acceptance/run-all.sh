#!/usr/bin/env bash
# Runs every acceptance script against a mountpoint and the agent's backing folder:
#   Scripts/acceptance/run-all.sh MOUNTPOINT BACKING_FOLDER [SCRIPT...]
# Prints one line per script, the output of failed ones, and "N passed, N failed"; exits 1 if any
# failed. Sanity check on a plain folder: run-all.sh /tmp/d /tmp/d
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 MOUNTPOINT BACKING_FOLDER [SCRIPT...]" >&2; exit 2; }
mount=$1 backing=$2
shift 2
scripts=("$@")
[ ${#scripts[@]} -gt 0 ] || scripts=(rsync vim atomic-save emacs-lock git tar sqlite make)

passed=0 failed=0 failures=()
for name in "${scripts[@]}"; do
  start=${EPOCHREALTIME/./}
  output=$(timeout 600 "$here/${name%.sh}.sh" "$mount" "$backing" 2>&1)
  status=$?
  elapsed=$(((${EPOCHREALTIME/./} - start) / 100000))
  seconds="$((elapsed / 10)).$((elapsed % 10))"
  if [ $status -eq 0 ]; then
    passed=$((passed + 1))
    echo "PASS $name (${seconds} s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name (exit $status, ${seconds} s)"
    printf '%s\n' "$output" | tail -n 25 | sed 's/^/    /'
  fi
done
echo "$passed passed, $failed failed${failures:+ (${failures[*]})}"
[ $failed -eq 0 ]
