#!/usr/bin/env bash
# Checks the include graph that docs/design.md draws:
#   core <- ops <- nn / inspect <- dist, report <- tools
# Each rule greps the real #include lines, so a header that starts reaching
# up a layer fails here. Usage: layering.sh SOURCE_DIR
set -uo pipefail
cd "$1" || exit 2
fail=0
bad() { echo "layering: $*"; fail=1; }
includes() { grep -hoE '#include [<"][^>"]+[>"]' "$@" 2>/dev/null | sed -E 's/#include [<"]([^>"]+)[>"]/\1/' | sort -u; }

core_h=(include/tapegrad/{dtype,error,shape,site,tape,tape_scope,memory,op_table,math_rules,rule_dispatch,scalar,real,userfn,tensor,threads,higher,replay,storage}.hpp)
ops_h=(include/tapegrad/ops.hpp include/tapegrad/registry.hpp)
inspect_h=(include/tapegrad/inspect.hpp include/tapegrad/gradcheck.hpp)
nn_h=(include/tapegrad/nn.hpp include/tapegrad/nn/*.hpp)

for f in "${core_h[@]}"; do
  for i in $(includes "$f"); do
    case "$i" in tapegrad/ops.hpp|tapegrad/registry.hpp|tapegrad/nn*|tapegrad/inspect.hpp|tapegrad/gradcheck.hpp|tapegrad/tapegrad.hpp|tapegrad/dist.hpp)
      bad "$f (core) includes $i" ;; esac
  done
done
for f in "${ops_h[@]}"; do
  for i in $(includes "$f"); do
    case "$i" in tapegrad/nn*|tapegrad/inspect.hpp|tapegrad/gradcheck.hpp|tapegrad/tapegrad.hpp)
      bad "$f (ops) includes $i" ;; esac
  done
done
for f in "${nn_h[@]}" src/nn/*.cpp; do
  for i in $(includes "$f"); do
    case "$i" in tapegrad/inspect.hpp|tapegrad/gradcheck.hpp|tapegrad/tapegrad.hpp|inspect/*)
      bad "$f (nn) includes $i: nn does not use inspection" ;;
    tapegrad/dist.hpp|dist/*|mpi.h) bad "$f (nn) includes $i: processes are dist's business (nn::ProcessGroup)" ;; esac
  done
done
for f in "${inspect_h[@]}" src/inspect/*.cpp; do
  for i in $(includes "$f"); do
    case "$i" in tapegrad/nn*|nn/*) bad "$f (inspect) includes $i" ;; esac
  done
done
# The report (training report pages) sits above nn and inspect; below it
# nothing knows of it.
for f in include/tapegrad/*.hpp include/tapegrad/nn/*.hpp $(find src -name '*.cpp' -o -name '*.hpp' | grep -v '^src/report/'); do
  [ "$f" = include/tapegrad/report.hpp ] && continue
  for i in $(includes "$f"); do
    case "$i" in tapegrad/report.hpp|report/*) bad "$f includes $i: only tools and the report itself use the report" ;; esac
  done
done
# Eigen only through <tapegrad/eigen.hpp>: the library does not depend on it.
for f in $(find include src -name '*.cpp' -o -name '*.hpp' | grep -v '^include/tapegrad/eigen.hpp$'); do
  for i in $(includes "$f"); do
    case "$i" in Eigen/*|tapegrad/eigen.hpp) bad "$f includes $i: only tapegrad/eigen.hpp uses Eigen" ;; esac
  done
done
# Only src/dist sees MPI; its public header does not.
for f in include/tapegrad/*.hpp include/tapegrad/nn/*.hpp $(find src -name '*.cpp' -o -name '*.hpp' | grep -v '^src/dist/'); do
  for i in $(includes "$f"); do
    case "$i" in mpi.h|dist/mpi.hpp) bad "$f includes $i: only src/dist uses MPI" ;; esac
  done
done
# The tools and the examples use public headers only.
for f in $(find tools docs/examples -name '*.cpp' -o -name '*.hpp'); do
  for i in $(includes "$f"); do
    case "$i" in core/*|ops/*|nn/*|inspect/*|src/*|../*) bad "$f includes the private header $i" ;; esac
  done
done
# No source file over 500 lines.
for f in $(find src include tools -name '*.cpp' -o -name '*.hpp'); do
  n=$(wc -l <"$f")
  [ "$n" -le 500 ] || bad "$f has $n lines (at most 500: split where a second idea starts)"
done
[ $fail = 0 ] && echo "layering: include graph and file sizes as documented"
exit $fail
