#!/usr/bin/env bash
# The atomic-save pattern of editors and config tools, 50 times: create a temporary file
# exclusively (O_EXCL, via bash's noclobber), write it, give it the target's mode, fsync it, and
# rename it over the target. The target always holds one complete version, never a mix.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup atomic-save "$@"

target="$WORK/config.json"
printf '{"version": 0}\n' >"$target"
chmod 0600 "$target"
payload=$(head -c 6000 /dev/zero | tr '\0' 'x')

for i in $(seq 1 50); do
  tmp="$WORK/.config.json.tmp$i"
  # noclobber makes `>` open with O_CREAT|O_EXCL.
  (set -C; printf '{"version": %d, "pad": "%s"}\n' "$i" "$payload" >"$tmp") ||
    fail "round $i: exclusive create of $tmp failed"
  if (set -C; echo again >"$tmp") 2>/dev/null; then
    fail "round $i: a second exclusive create of $tmp succeeded (O_EXCL not honoured)"
  fi
  chmod 0600 "$tmp" || fail "round $i: chmod of the temporary file failed"
  sync "$tmp" || fail "round $i: fsync of the temporary file failed"
  mv -f "$tmp" "$target" || fail "round $i: rename over the target failed"
  [ ! -e "$tmp" ] || fail "round $i: the temporary file is still there after the rename"
  got=$(head -c 24 "$target")
  [[ $got == "{\"version\": $i, \"pad\""* ]] || fail "round $i: target starts with '$got' right after the rename"
done

printf '{"version": 50, "pad": "%s"}\n' "$payload" >"$LOCAL/expected"
sync_backing
for view in "$target" "$WORK_BACKING/config.json"; do
  cmp "$LOCAL/expected" "$view" >&2 || fail "final content of $view is wrong"
  [ "$(stat -c %a "$view")" = 600 ] || fail "mode of $view is $(stat -c %a "$view"), not 600"
done
leftovers=$(cd "$WORK_BACKING" && ls -A | grep -v '^config.json$' || true)
[ -z "$leftovers" ] || fail "files left behind: $leftovers"
echo "atomic-save: ok"
