#!/usr/bin/env bash
# Builds tapegrad and runs the whole suite twice: a release build with
# warnings as errors, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh test torch browser
jobs=$(nproc)
for kind in release sanitize; do
  dir=build/$kind
  flags=(-DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_WERROR=ON -DTAPEGRAD_BUILD_TESTS=ON)
  [ $kind = sanitize ] && flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_WERROR=ON -DTAPEGRAD_BUILD_TESTS=ON -DTAPEGRAD_SANITIZE=ON)
  echo "== $kind build"
  cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== $kind tests"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    ctest --test-dir "$dir" --output-on-failure -j "$jobs"
done
# The threads tests under ThreadSanitizer (matrix kernels single-threaded in
# them: OpenMP's runtime is not instrumented).
echo "== tsan build"
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_WERROR=ON -DTAPEGRAD_BUILD_TESTS=ON \
  -DTAPEGRAD_BUILD_TOOLS=OFF -DTAPEGRAD_TSAN=ON >/dev/null
cmake --build build/tsan -j "$jobs" --target tapegrad_tests
echo "== tsan tests"
TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/tapegrad_tests "[threads]"
