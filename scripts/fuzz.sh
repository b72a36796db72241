#!/usr/bin/env bash
# Builds the run request's libFuzzer harness (test/fuzz/request-fuzzer.c) with clang and the address and
# undefined-behaviour sanitizers, then runs it with the given libFuzzer arguments (corpus directories and
# flags). CI runs it from test/fuzz/request-fuzzer.test.ts for a fixed number of inputs; for a longer
# session by hand:
#
#   bash scripts/fuzz.sh -max_total_time=600 /tmp/zb-corpus
#
# A crash, a sanitizer report or a broken promise of a decoder exits non-zero and leaves the input in
# ./crash-* (or -artifact_prefix=).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is missing: install it with apt-get install -y clang (scripts/apt-deps.sh does, as root)" >&2
  exit 2
fi

out=packages/native/build/fuzz
mkdir -p "$out"
binary="$out/request-fuzzer"
sources=(test/fuzz/request-fuzzer.c packages/native/src/*.c packages/native/runtimes/shell/shell.c)
# Rebuilt only when a source is newer: the build takes a few seconds.
stale=0
[ -x "$binary" ] || stale=1
for source in "${sources[@]}" packages/native/src/*.h; do
  [ "$source" -nt "$binary" ] && stale=1
done
if [ "$stale" = 1 ]; then
  # The whole library, instrumented: shell.c (included by the harness) calls into it. -O1 -g: readable
  # sanitizer reports at a fuzzing speed that is still high.
  clang -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -Wno-format-truncation -Wno-unused-function \
    -I packages/native/src test/fuzz/request-fuzzer.c packages/native/src/*.c \
    $(pkg-config --libs libseccomp) -o "$binary.tmp"
  mv "$binary.tmp" "$binary"
fi

exec "$binary" "$@"
