#!/usr/bin/env bash
# Installs the Debian packages a tapegrad task needs, skipping what is present.
#   tools/deps.sh build   compiler, CMake and the libraries
#   tools/deps.sh test    build + Catch2, Google Benchmark, ADOL-C (a peer in the benchmarks), Open MPI,
#                         Eigen, Ipopt, and pybind11 with Python's headers, NumPy and pytest (the
#                         Python module and its tests)
#   tools/deps.sh train   build + the Fashion-MNIST data set and gnuplot
#   tools/deps.sh torch   Debian's python3-torch (and tcmalloc, one of its fast set-ups), for the comparison scripts
#   tools/deps.sh browser Debian's chromium and the DejaVu fonts, Node.js when missing, and
#                         playwright-core from tests/browser/package-lock.json (npm ci)
set -euo pipefail
build=(g++ cmake ninja-build pkg-config libfmt-dev libopenblas-dev libdnnl-dev zlib1g-dev
       libcli11-dev libgraphviz-dev graphviz)
want=("${build[@]}")
for task in "$@"; do
  case "$task" in
    build) ;;
    test) want+=(catch2 libbenchmark-dev libadolc-dev openmpi-bin libopenmpi-dev libeigen3-dev
                 coinor-libipopt-dev pybind11-dev python3-dev python3-numpy python3-pytest) ;;
    train) want+=(dataset-fashion-mnist gnuplot-nox) ;;
    torch) want+=(python3-torch python3-numpy libtcmalloc-minimal4) ;;
    browser)
      want+=(chromium fonts-dejavu-core)
      command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm) ;;
    *) echo "deps.sh: unknown task '$task' (build, test, train, torch, browser)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# The browser tests' driver, pinned by the lockfile (no browser download:
# it drives Debian's chromium).
for task in "$@"; do
  if [ "$task" = browser ] && [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    echo "deps.sh: npm ci in tests/browser"
    (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done
