#!/usr/bin/env bash
# make of a small C project inside the mount: compile, link, run the binary; make again does
# nothing; touching one source rebuilds only what depends on it (mtime comparisons through the
# mount).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
acceptance_setup make "$@"

project="$WORK/project"
mkdir "$project"
cat >"$project/greet.h" <<'C'
const char *greeting(void);
int answer(void);
C
cat >"$project/greet.c" <<'C'
#include "greet.h"
const char *greeting(void) { return "hello from the mount"; }
C
cat >"$project/answer.c" <<'C'
#include "greet.h"
int answer(void) { return 42; }
C
cat >"$project/main.c" <<'C'
#include <stdio.h>
#include "greet.h"
int main(void) { printf("%s %d\n", greeting(), answer()); return 0; }
C
printf '%s\n' \
  'app: main.o greet.o answer.o' \
  '	$(CC) -o $@ $^' \
  '%.o: %.c greet.h' \
  '	$(CC) -O1 -Wall -c -o $@ $<' \
  'clean:' \
  '	rm -f app *.o' >"$project/Makefile"

step "make" make -s -C "$project"
[ -x "$project/app" ] || fail "the linked binary is not executable"
out=$("$project/app") || fail "running the binary failed"
[ "$out" = "hello from the mount 42" ] || fail "the binary printed '$out'"

out=$(make -C "$project" 2>&1) || fail "second make failed: $out"
grep -q "'app' is up to date" <<<"$out" || fail "second make did something: $out"

# sed -i writes greet.c anew: it is now newer than greet.o (by milliseconds: make compares
# nanosecond mtimes). Only greet.o and app are rebuilt.
sed -i 's/hello from the mount/hello again/' "$project/greet.c"
out=$(make -C "$project" 2>&1) || fail "make after a change failed: $out"
grep -q 'greet.o greet.c' <<<"$out" || fail "make after a change did not rebuild greet.o: $out"
! grep -q 'main.o main.c' <<<"$out" || fail "make after a change rebuilt main.o too: $out"
[ "$("$project/app")" = "hello again 42" ] || fail "the rebuilt binary printed '$("$project/app")'"
out=$(make -C "$project" 2>&1) || fail "make after the rebuild failed: $out"
grep -q "'app' is up to date" <<<"$out" || fail "make after the rebuild did something: $out"
step "make clean" make -s -C "$project" clean
sync_backing
[ -z "$(ls "$WORK_BACKING/project" | grep -E '\.o$|^app$' || true)" ] || fail "make clean left files in the backing folder"
echo "make: ok"
