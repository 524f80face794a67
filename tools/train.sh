#!/usr/bin/env bash
# The main job: installs what it needs, builds tapegrad, and trains a
# 784-256-128-10 ReLU MLP on Fashion-MNIST with the default recipe. Outputs go
# to runs/fashion-mnist/ (metrics.csv, summary.json, curves.svg, graph.svg,
# checkpoint.tgc, summary.txt). Extra arguments go to `tapegrad train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh train
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target tapegrad_cli
exec build/release/tools/tapegrad train --out runs/fashion-mnist "$@"
