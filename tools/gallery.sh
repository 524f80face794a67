#!/usr/bin/env bash
# Regenerates docs/gallery/: the four worked examples of the reference notes
# and one training step of the Fashion-MNIST MLP, drawn by tapegrad itself,
# the sweep explorer of example 2 and screenshots of the explorer and report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh train browser
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build build/release --target tapegrad_cli
tg=build/release/tools/tapegrad
mkdir -p docs/gallery
for n in 1 2 3 4; do
  "$tg" example "$n" --dot "docs/gallery/example$n.svg" >/dev/null
  "$tg" example "$n" --trace > "docs/gallery/example$n.txt"
done
tmp=$(mktemp -d)
"$tg" train --limit 1024 --epochs 1 --out "$tmp" --quiet --no-plot >/dev/null
cp "$tmp/graph.svg" docs/gallery/mlp_step.svg
rm -rf "$tmp"
# The sweep explorer of worked example 2, and screenshots of the explorer and
# the training report taken by the browser test in headless chromium.
"$tg" example 2 --html docs/gallery/example2.html >/dev/null
node tests/browser/run.mjs "$PWD/$tg" "$(mktemp -d)" "$PWD/docs/gallery"
echo "wrote docs/gallery/"
