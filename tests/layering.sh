#!/usr/bin/env bash
# Checks the include graph that docs/design.md draws:
#   core <- ops <- nn / inspect <- dist, report <- tools, the Python binding (src/python)
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
# nothing knows of it. The Python binding sits at the top, beside tools.
for f in include/tapegrad/*.hpp include/tapegrad/nn/*.hpp $(find src -name '*.cpp' -o -name '*.hpp' | grep -v '^src/report/' | grep -v '^src/python/'); do
  [ "$f" = include/tapegrad/report.hpp ] && continue
  for i in $(includes "$f"); do
    case "$i" in tapegrad/report.hpp|report/*) bad "$f includes $i: only tools, the Python binding and the report itself use the report" ;; esac
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
# Headers by audience: the op implementer's types (tensor_node.hpp) reach a
# user only through tape.hpp, which stores the nodes; the user's guide and
# the README do not teach them (docs/new-op.md does).
for f in include/tapegrad/*.hpp include/tapegrad/nn/*.hpp; do
  case "$f" in include/tapegrad/tape.hpp|include/tapegrad/tensor_node.hpp) continue ;; esac
  for i in $(includes "$f"); do
    [ "$i" = tapegrad/tensor_node.hpp ] && bad "$f includes $i: the op implementer's header comes through tape.hpp only"
  done
done
for f in README.md docs/usage.md; do
  if grep -nE 'TensorOpDef|TensorNode|TensorAttrs|push_scalar|put_scalar|commit_scalars|defer_outer|grad_buffer' "$f"; then
    bad "$f names the op implementer's API (it belongs in docs/new-op.md)"
  fi
done
# Docs describe the product as it is: no diary ("the ninth session", "withdrawn")
# and no links that leave the repository; every relative link resolves.
for f in README.md docs/*.md; do
  if grep -niE '\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|this|last|next|earlier|previous|one) session|withdrawn' "$f"; then
    bad "$f reads like a diary (history lives in git)"
  fi
  if grep -noE '\]\((https?|ftp)://[^)]*\)' "$f"; then bad "$f links outside the repository"; fi
  for target in $(awk '/^```/ { code = !code; next } !code' "$f" |
                  grep -oE '\]\([A-Za-z0-9_./-]+(#[^)]*)?\)' | sed -E 's/^\]\(//; s/[#)].*$//'); do
    [ -e "$(dirname "$f")/$target" ] || bad "$f links to $target, which does not exist"
  done
done
# No source file over 500 lines.
for f in $(find src include tools -name '*.cpp' -o -name '*.hpp'); do
  n=$(wc -l <"$f")
  [ "$n" -le 500 ] || bad "$f has $n lines (at most 500: split where a second idea starts)"
done
[ $fail = 0 ] && echo "layering: include graph and file sizes as documented"
exit $fail
