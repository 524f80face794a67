#!/usr/bin/env bash
# `mpirun -np 2 tapegrad train`, end to end: the same run as one process,
# one set of outputs, resume across rank counts, and the faults (an error on
# one rank, a collective error, a rank killed) ending every rank in bounded
# time with the message printed once. Usage: dist_cli.sh TAPEGRAD WORKDIR
set -uo pipefail
bin=$1
work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 2
mpirun=(mpirun --oversubscribe -np 2)
py=/usr/bin/python3
fail=0
pass() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
# field FILE KEY: a value of summary.json
field() { "$py" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
# close A B RTOL: |a - b| <= rtol * |b|
close() { "$py" -c "import sys; a,b,r=map(float,sys.argv[1:]); sys.exit(abs(a-b) > r*abs(b))" "$1" "$2" "$3"; }
common=(--data moons --hidden 16,16 --batch-size 50 --lr 0.01 --schedule constant --no-plot --no-graph --quiet)

# 1. Two ranks give the one-process run, and only rank 0 speaks and writes.
"$bin" train "${common[@]}" --epochs 3 --out one >one.log 2>&1 || bad "one process failed: $(cat one.log)"
"${mpirun[@]}" "$bin" train "${common[@]}" --epochs 3 --out two >two.log 2>&1 || bad "2 ranks failed: $(cat two.log)"
[ "$(field one/summary.json world_size)" = 1 ] && [ "$(field two/summary.json world_size)" = 2 ] &&
  pass "summary.json world_size 1 and 2" || bad "world_size in summary.json"
a=$(field two/summary.json final_test_loss) b=$(field one/summary.json final_test_loss)
close "$a" "$b" 1e-4 && pass "2 ranks: test loss $a, one process: $b" || bad "test loss $a (2 ranks) vs $b (1)"
[ "$(grep -c 'tapegrad training summary' two.log)" = 1 ] && pass "the summary is printed once" ||
  bad "summary printed $(grep -c 'tapegrad training summary' two.log) times"
[ -z "$(find two -name '*.tmp*')" ] && [ -s two/checkpoint.tgc ] && [ "$(wc -l <two/metrics.csv)" = 4 ] &&
  pass "one checkpoint and 3 metric rows, no temporary files" || bad "outputs of the 2-rank run: $(ls two)"

# 2. Resume on a different number of ranks continues the same run.
"${mpirun[@]}" "$bin" train "${common[@]}" --epochs 2 --out r21 >/dev/null 2>&1 &&
  "$bin" train "${common[@]}" --epochs 3 --out r21 --resume >r21.log 2>&1 || bad "2 ranks then 1: $(cat r21.log)"
"$bin" train "${common[@]}" --epochs 2 --out r12 >/dev/null 2>&1 &&
  "${mpirun[@]}" "$bin" train "${common[@]}" --epochs 3 --out r12 --resume >r12.log 2>&1 || bad "1 then 2 ranks: $(cat r12.log)"
for r in r21 r12; do
  a=$(field $r/summary.json final_test_loss)
  close "$a" "$b" 1e-4 && [ "$(wc -l <$r/metrics.csv)" = 4 ] && pass "$r: resumed to epoch 3, test loss $a" ||
    bad "$r: test loss $a vs $b, $(wc -l <$r/metrics.csv) metric lines"
done

# 3. An error on rank 1 alone (its CSV is broken at line 4) ends both ranks.
printf 'a,b,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,oops,0\n' >bad.csv
printf 'a,b,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,0.4,0\n' >good.csv
start=$SECONDS
timeout 60 mpirun --oversubscribe -np 1 "$bin" train --data csv:good.csv --out f1 --quiet --no-plot --no-graph : \
  -np 1 "$bin" train --data csv:bad.csv --out f1 --quiet --no-plot --no-graph >f1.log 2>&1
rc=$?
n=$(grep -c 'bad.csv' f1.log)
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$n" = 1 ] && grep -q 'error on rank 1 of 2: bad.csv:4: ' f1.log &&
  pass "an error on rank 1: exit $rc after $((SECONDS - start)) s, message once" ||
  bad "an error on rank 1: exit $rc, message $n times: $(cat f1.log)"

# 4. An error every rank meets (divergence) is printed once, by rank 0.
timeout 60 "${mpirun[@]}" "$bin" train --data moons --hidden 16 --optimizer sgd --momentum 0 --lr 1e30 \
  --epochs 2 --out f2 --quiet --no-plot --no-graph >f2.log 2>&1
rc=$?
n=$(grep -c 'training diverged' f2.log)
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$n" = 1 ] && pass "divergence on both ranks: exit $rc, message once" ||
  bad "divergence: exit $rc, message $n times: $(cat f2.log)"

# 5. A rank killed mid-run: mpirun ends the other and fails within 30 s.
mpirun --oversubscribe -np 2 "$bin" train --data moons --hidden 64,64 --batch-size 8 --epochs 100000 --out f3 \
  --quiet --no-plot --no-graph >f3.log 2>&1 &
launcher=$!
victim=""
for _ in $(seq 100); do
  sleep 0.2
  for p in $(pgrep -P $launcher); do
    grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && victim=$p
  done
  [ -n "$victim" ] && break
done
if [ -z "$victim" ]; then
  bad "rank 1 of the kill test never started: $(cat f3.log)"
  kill $launcher 2>/dev/null
else
  sleep 1
  kill -9 "$victim"
  start=$SECONDS
  for _ in $(seq 300); do kill -0 $launcher 2>/dev/null || break; sleep 0.1; done
  if kill -0 $launcher 2>/dev/null; then
    bad "mpirun still running 30 s after rank 1 was killed"
    kill -9 $launcher
  else
    wait $launcher
    rc=$?
    [ $rc -ne 0 ] && pass "rank 1 killed: mpirun exit $rc after $((SECONDS - start)) s" || bad "rank 1 killed: mpirun exit 0"
  fi
fi
pkill -9 -f "$work/f3" 2>/dev/null
exit $fail
