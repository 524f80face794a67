#!/usr/bin/env bash
# Fuzzes one target (expr, idx, csv, checkpoint, graph, optimize, or all) with libFuzzer
# under AddressSanitizer and UndefinedBehaviorSanitizer for SECONDS each.
#   bash tools/fuzz.sh expr 600
# New corpus entries go to build/fuzz/corpus/TARGET; crashes to build/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh TARGET|all SECONDS}
seconds=${2:-600}
bash tools/deps.sh test
missing=()
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
CC=clang-14 CXX=clang++-14 cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_FUZZ=ON \
  -DTAPEGRAD_BUILD_TOOLS=OFF -DTAPEGRAD_WITH_DNNL=OFF >/dev/null
targets=("$target")
[ "$target" = all ] && targets=(expr idx csv checkpoint graph optimize)
mkdir -p build/fuzz/crashes
for t in "${targets[@]}"; do
  cmake --build build/fuzz --target "fuzz_$t"
  mkdir -p "build/fuzz/corpus/$t"
  echo "== fuzzing $t for ${seconds}s"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 "build/fuzz/tests/fuzz/fuzz_$t" \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crashes/$t-" "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" 2>&1 |
    grep -E "stat::|ERROR|SUMMARY|artifact|Done" || true
done
