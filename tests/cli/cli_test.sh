#!/usr/bin/env bash
# End-to-end tests of the tapegrad command: each check runs the real binary
# and asserts on its exit code and output. Usage: cli_test.sh TAPEGRAD WORKDIR
set -uo pipefail
tg=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
pass=0 fail=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $name"; fi
}
has() { grep -qF -- "$2" "$1"; }

"$tg" grad '(x+y)*z' --at x=-2,y=5,z=-4 --json >"$work/grad.json"
check "grad exit code" test $? -eq 0
check "grad value" has "$work/grad.json" '"value": -12'
check "grad df/dx" has "$work/grad.json" '"x": -4'
check "grad df/dz" has "$work/grad.json" '"z": 3'

"$tg" grad '(x+y' --at x=1,y=2 2>"$work/err.txt"
check "syntax error exit code" test $? -eq 1
check "syntax error column" has "$work/err.txt" "1:5: expected ')'"

"$tg" grad 'sigmoid(w*x)' --at w=2,x=-1 --dot "$work/g.svg" --trace --check >"$work/trace.txt"
check "grad --check passes" test $? -eq 0
check "grad --dot writes svg" has "$work/g.svg" "<svg"
check "grad --trace" has "$work/trace.txt" "grad_s"

"$tg" gradcheck >"$work/gradcheck.txt"
check "gradcheck exit code" test $? -eq 0
check "gradcheck all pass" grep -qE '^[0-9]+ passed, 0 failed$' "$work/gradcheck.txt"
"$tg" gradcheck --op matmul --json >"$work/gradcheck.json"
check "gradcheck json" has "$work/gradcheck.json" '"op": "matmul"'

for n in 1 2 3 4; do
  "$tg" example $n --check >"$work/ex$n.txt"
  check "example $n node check" test $? -eq 0
done

out=$work/run
"$tg" train --data moons --hidden 16 --epochs 2 --out "$out" --quiet --no-plot >/dev/null
check "train exit code" test $? -eq 0
check "train writes summary.json" has "$out/summary.json" '"final_test_accuracy"'
check "summary.json has the tape's peak" grep -qE '"tape_peak_bytes": [1-9][0-9]+,' "$out/summary.json"
check "train writes graph.svg" has "$out/graph.svg" "cluster"
check "train metrics rows" test "$(wc -l <"$out/metrics.csv")" -eq 3
"$tg" train --data moons --hidden 16 --epochs 3 --out "$out" --resume --quiet --no-plot >/dev/null
check "resume exit code" test $? -eq 0
check "resume continues the metrics" test "$(wc -l <"$out/metrics.csv")" -eq 4

check "train writes report.html" has "$out/report.html" 'data-series="train_loss"'
check "the resumed run's report keeps epoch 1's metrics" has "$out/report.html" 'data-x="1" data-y='
check "the resumed run's report has epoch 3" has "$out/report.html" 'data-x="3" data-y='
check "the report's explorer sweeps a step" has "$out/report.html" 'class="tg-explorer"'
check "no temporary file is left" test ! -e "$out/report.html.tmp"
"$tg" train --data moons --hidden 8 --epochs 1 --out "$work/noreport" --quiet --no-plot --no-report >/dev/null
check "--no-report writes none" test ! -e "$work/noreport/report.html"

# The update inside the sweep and after it give the same run: every loss
# and accuracy in metrics.csv (the seconds columns aside) match.
for f in fused plain; do
  flag=--fused-update=off
  [ $f = fused ] && flag=--fused-update
  "$tg" train --data moons --hidden 16 --epochs 2 --lr 0.02 --out "$work/$f" --quiet --no-plot --no-report \
    --no-graph $flag >/dev/null
  cut -d, -f1-4,7 "$work/$f/metrics.csv" >"$work/$f.cols"
done
check "--fused-update trains the same numbers" cmp -s "$work/fused.cols" "$work/plain.cols"
check "the fused run trained" awk -F, 'NR == 3 { exit !($4 + 0 > 0.8) }' "$work/fused.cols"
# --checkpoint-layers recomputes each layer in the sweep: the same numbers in
# metrics.csv, less tape at its peak, and the recompute's own peak reported.
"$tg" train --data moons --hidden 64,64 --epochs 2 --lr 0.02 --out "$work/ckpt" --quiet --no-plot --no-report \
  --no-graph --checkpoint-layers --fused-update=off >/dev/null
"$tg" train --data moons --hidden 64,64 --epochs 2 --lr 0.02 --out "$work/nockpt" --quiet --no-plot --no-report \
  --no-graph --fused-update=off >/dev/null
cut -d, -f1-4,7 "$work/ckpt/metrics.csv" >"$work/ckpt.cols"
cut -d, -f1-4,7 "$work/nockpt/metrics.csv" >"$work/nockpt.cols"
check "--checkpoint-layers trains the same numbers" cmp -s "$work/ckpt.cols" "$work/nockpt.cols"
check "--checkpoint-layers is in summary.json" has "$work/ckpt/summary.json" '"checkpoint_layers": true'
peak() { sed -nE "s/.*\"$2\": ([0-9]+),/\1/p" "$1/summary.json"; }
check "--checkpoint-layers lowers the tape's peak" test "$(peak "$work/ckpt" tape_peak_bytes)" -lt \
  "$(peak "$work/nockpt" tape_peak_bytes)"
check "--checkpoint-layers reports the recompute's peak" test "$(peak "$work/ckpt" recompute_peak_bytes)" -gt 0
# auto (the default) fuses for batches of one row on two or more threads
# only, and says so in summary.json; a bad value is an error before training.
for t in 1 2; do
  "$tg" train --data moons --hidden 8 --epochs 1 --limit 40 --batch-size 1 --threads $t \
    --out "$work/auto$t" --quiet --no-plot --no-report --no-graph >/dev/null
done
check "--fused-update auto: on at batch 1 with 2 threads" has "$work/auto2/summary.json" '"fused_update": true'
check "--fused-update auto: off with 1 thread" has "$work/auto1/summary.json" '"fused_update": false'
"$tg" train --data moons --hidden 8 --epochs 1 --batch-size 1 --threads 2 --fused-update=sometimes \
  --out "$work/badfused" --quiet --no-plot >/dev/null 2>"$work/err.txt"
check "--fused-update with a bad value fails" test $? -eq 1
check "--fused-update's error names the value" has "$work/err.txt" "unknown --fused-update 'sometimes': use on, off or auto"
check "--fused-update's error comes before any output" test ! -e "$work/badfused"

# Replicas: the batch split over threads, with the mse loss whose targets are
# per replica; the run trains and says how it ran.
"$tg" train --data moons --hidden 16 --epochs 3 --loss mse --lr 0.01 --replicas 3 --out "$work/rep" \
  --quiet --no-plot --no-report --no-graph >/dev/null
check "--replicas exit code" test $? -eq 0
check "--replicas in summary.json" has "$work/rep/summary.json" '"replicas": 3'
check "--replicas trains" awk -F': ' '/final_test_accuracy/ { exit !($2 + 0 > 0.8) }' "$work/rep/summary.json"
"$tg" train --data moons --replicas -1 --out "$work/x" 2>"$work/err.txt"
check "--replicas -1 is refused" has "$work/err.txt" "--replicas"

# The sweep explorer from the command line.
"$tg" example 2 --html "$work/ex2.html" >"$work/ex2.out"
check "example --html exit code" test $? -eq 0
check "example --html page" has "$work/ex2.html" '<g id="s10" class="node">'
check "example --html says where" has "$work/ex2.out" "wrote $work/ex2.html"
"$tg" grad 'x*y + exp(x)' --at x=1,y=2 --html "$work/g.html" >/dev/null
check "grad --html exit code" test $? -eq 0
check "grad --html steps" has "$work/g.html" '"steps":['
"$tg" grad 'x*y' --at x=1,y=2 --at x=3,y=4 --html "$work/g2.html" 2>"$work/err.txt"
check "grad --html with two points fails" test $? -eq 1
check "grad --html with two points says why" has "$work/err.txt" "--html draws one point; 2 --at points were given"
"$tg" example 2 --html "$work/no-such-dir/x.html" >/dev/null 2>"$work/err.txt"
check "--html into a missing folder fails" test $? -eq 1
check "--html into a missing folder names it" has "$work/err.txt" "no-such-dir/x.html: cannot write"

sum_before=$(md5sum <"$out/checkpoint.tgc")
"$tg" train --data moons --hidden 32 --epochs 4 --out "$out" --resume --quiet --no-plot 2>"$work/err.txt"
check "resume into another model fails" test $? -eq 1
check "resume error names the entry" has "$work/err.txt" "entry 'layer0.weight'"
check "failed resume leaves the checkpoint" test "$(md5sum <"$out/checkpoint.tgc")" = "$sum_before"

"$tg" train --data mnist:/nonexistent --out "$work/x" 2>"$work/err.txt"
check "missing data exit code" test $? -eq 1
check "missing data names the folder" has "$work/err.txt" "/nonexistent: no file"
printf 'a,b,label\n1,2,0\n3,oops,1\n' >"$work/bad.csv"
"$tg" train --data "csv:$work/bad.csv" --out "$work/x" 2>"$work/err.txt"
check "bad csv names line and column" has "$work/err.txt" "bad.csv:3: column 2 ('b'): 'oops' is not a number"
"$tg" train --data moons --activation swish --out "$work/x" 2>"$work/err.txt"
check "unknown activation" has "$work/err.txt" "unknown activation 'swish'"

# Several points: recorded once, replayed at the rest; one JSON result per point.
"$tg" grad 'x*y + 2*x - 3/y' --at x=1,y=2 --at y=4,x=3 --at x=-1,y=0.5 --json >"$work/points.json"
check "grad points exit code" test $? -eq 0
check "grad points second value" has "$work/points.json" '"value": 17.25'
check "grad points second df/dy" has "$work/points.json" '"y": 3.1875'
check "grad points third df/dx" has "$work/points.json" '"x": 2.5'
check "grad points reordered" has "$work/points.json" '"at": {"x": 3, "y": 4}'
"$tg" grad 'max(x, y) * 3' --at x=1,y=2 --at x=5,y=2 >"$work/route.txt"
check "grad points: max re-decides" grep -qzF $'df/dx = 3\ndf/dy = 0' "$work/route.txt"
check "grad points: max first point" grep -qzF $'df/dx = 0\ndf/dy = 3' "$work/route.txt"
"$tg" grad 'x*y' --at x=1,y=2 --at x=3 2>"$work/err.txt"
check "grad points: missing variable" has "$work/err.txt" "--at point 2 ('x=3') gives no value for 'y'"
"$tg" grad 'x*y' --at x=1,y=2 --at x=3,y=1,z=2 2>"$work/err.txt"
check "grad points: extra variable" has "$work/err.txt" "--at point 2 ('x=3,y=1,z=2') names 'z'"
"$tg" grad 'x*y' --at x=1,y=2 --at x=3,y=1 --dot "$work/two.svg" 2>"$work/err.txt"
check "grad points: one dot" has "$work/err.txt" "--dot draws one point; 2 --at points were given"

# Second order: the Hessian (exact key layout), forward mode, NaN as an error.
"$tg" hessian '(1-x)^2 + 100*(y-x^2)^2' --at x=1.5,y=2 --json >"$work/hess.json"
check "hessian exit code" test $? -eq 0
/usr/bin/python3 - "$work/hess.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["expression", "value", "gradient", "hessian"], list(d)
assert d["value"] == 6.5 and d["gradient"] == {"x": 151, "y": -50}, d
assert d["hessian"] == {"x": {"x": 1902, "y": -600}, "y": {"x": -600, "y": 200}}, d["hessian"]
PY
check "hessian json keys and Rosenbrock values" test $? -eq 0

# Several outputs: the Jacobian, dense and sparse, its pattern, and errors.
"$tg" jacobian 'x*y; sin(x)+z; z^2' --at x=1,y=2,z=3 --json >"$work/jac.json"
check "jacobian exit code" test $? -eq 0
"$tg" jacobian 'x*y; sin(x)+z; z^2' --at x=1,y=2,z=3 --json --sparse >"$work/jacs.json"
/usr/bin/python3 - "$work/jac.json" "$work/jacs.json" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["inputs", "outputs", "values", "jacobian"], list(d)
assert d["inputs"] == ["x", "y", "z"] and d["values"][0] == 2 and d["values"][2] == 9, d
assert d["jacobian"] == [[2, 1, 0], [math.cos(1), 0, 1], [0, 0, 6]], d["jacobian"]
s = json.load(open(sys.argv[2]))["jacobian"]
assert s["rows"] == [0, 0, 1, 1, 2] and s["cols"] == [0, 1, 0, 2, 2], s
assert s["values"] == [2, 1, math.cos(1), 1, 6], s
PY
check "jacobian json, dense and sparse" test $? -eq 0
"$tg" jacobian 'x*y; sin(x)+z; z^2' --at x=1,y=2,z=3 --pattern - >"$work/jacp.txt"
check "jacobian pattern as text" test "$(cat "$work/jacp.txt")" = "$(printf '##.\n#.#\n..#')"
"$tg" jacobian 'x*y; z' --at x=1,y=2,z=3 --pattern "$work/jacp.svg" >/dev/null
check "jacobian pattern as svg" has "$work/jacp.svg" "2 x 3 pattern, 3 nonzeros"
"$tg" jacobian 'x*y; sin(x+; z' --at x=1,y=2,z=3 2>"$work/err.txt"
check "jacobian syntax error names the expression" has "$work/err.txt" "expression 2: 1:7:"
"$tg" jacobian 'x*y;; z' --at x=1,y=2,z=3 2>"$work/err.txt"
check "jacobian empty expression" has "$work/err.txt" "expression 2 is empty"
"$tg" jacobian 'x*y; log(z-3)' --at x=1,y=2,z=3 2>"$work/err.txt"
check "jacobian infinity names the entry" has "$work/err.txt" "d(log(z-3))/dz is not finite"
# Against PyTorch float64 (torch.autograd.functional.jacobian), when present.
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 - "$tg" <<'PY'
import json, random, subprocess, sys
import torch
torch.set_default_dtype(torch.float64)
tg = sys.argv[1]
ops = ["sin({a})", "cos({a})", "exp(0.3*{a})", "tanh({a}*{b})", "sqrt(1+{a}^2)", "atan2({a},{b}+3)",
       "hypot({a},{b})", "{a}*{b}", "{a}/(2+{b}^2)", "log(1+{a}^2)", "max({a},{b})", "abs({a})*{b}"]
names = "abcdefgh"
random.seed(5)
for trial in range(20):
    n, m = random.randint(2, 8), random.randint(2, 6)
    exprs = []
    for _ in range(m):
        e = random.choice(names[:n])
        for _ in range(random.randint(1, 4)):
            e = random.choice(ops).format(a="(" + e + ")", b=random.choice(names[:n]))
        exprs.append(e)
    x = [round(random.uniform(-1.5, 1.5), 3) for _ in range(n)]
    at = ",".join(f"{names[i]}={x[i]}" for i in range(n))
    for sparse in (False, True):
        args = [tg, "jacobian", "; ".join(exprs), "--at", at, "--json"] + (["--sparse"] if sparse else [])
        d = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
        def f(*v):
            env = {names[i]: v[i] for i in range(n)}
            env.update(sin=torch.sin, cos=torch.cos, exp=torch.exp, tanh=torch.tanh, sqrt=torch.sqrt,
                       atan2=torch.atan2, hypot=torch.hypot, log=torch.log, abs=torch.abs,
                       max=torch.maximum)
            return torch.stack([eval(e.replace("^", "**"), env) for e in exprs])
        J = torch.autograd.functional.jacobian(f, tuple(torch.tensor(v) for v in x))
        J = torch.stack(J, dim=1)
        vals = f(*[torch.tensor(v) for v in x])
        for r in range(m):
            assert abs(d["values"][r] - vals[r].item()) <= 1e-12 * (1 + abs(vals[r].item())), (exprs[r], d)
        if sparse:
            j = d["jacobian"]
            dense = [[0.0] * n for _ in range(m)]
            for r, c, v in zip(j["rows"], j["cols"], j["values"]):
                dense[r][c] = v
        else:
            dense = d["jacobian"]
        for r in range(m):
            for c in range(n):
                want = J[r][c].item()
                assert abs(dense[r][c] - want) <= 1e-10 * (1 + abs(want)), (exprs[r], names[c], dense[r][c], want)
PY
  check "jacobian matches PyTorch float64 on 20 random vector functions" test $? -eq 0
  /usr/bin/python3 - "$tg" <<'PY'
import json, random, subprocess, sys
import torch
torch.set_default_dtype(torch.float64)
tg = sys.argv[1]
ops = ["sin({a})", "cos({a})", "exp(0.3*{a})", "tanh({a}*{b})", "sqrt(1+{a}^2)", "atan2({a},{b}+3)",
       "hypot({a},{b})", "{a}*{b}", "{a}/(2+{b}^2)", "log(1+{a}^2)"]
names = "abcdefgh"
random.seed(9)
for trial in range(15):
    n, m = random.randint(2, 7), random.randint(1, 4)
    exprs = []
    for _ in range(m):
        e = random.choice(names[:n])
        for _ in range(random.randint(1, 4)):
            e = random.choice(ops).format(a="(" + e + ")", b=random.choice(names[:n]))
        exprs.append(e)
    x = [round(random.uniform(-1.5, 1.5), 3) for _ in range(n)]
    w = [round(random.uniform(-2, 2), 3) for _ in range(m)]
    at = ",".join(f"{names[i]}={x[i]}" for i in range(n))
    def f(v):
        env = {names[i]: v[i] for i in range(n)}
        env.update(sin=torch.sin, cos=torch.cos, exp=torch.exp, tanh=torch.tanh, sqrt=torch.sqrt,
                   atan2=torch.atan2, hypot=torch.hypot, log=torch.log)
        return sum(w[k] * eval(exprs[k].replace("^", "**"), env) for k in range(m))
    H = torch.autograd.functional.hessian(f, torch.tensor(x))
    for sparse in (False, True):
        args = [tg, "hessian", "; ".join(exprs), "--at", at, "--weights", ",".join(map(str, w)), "--json"]
        d = json.loads(subprocess.run(args + (["--sparse"] if sparse else []), check=True,
                                      capture_output=True, text=True).stdout)
        dense = [[0.0] * n for _ in range(n)]
        if sparse:
            h = d["hessian"]
            for r, c, v in zip(h["rows"], h["cols"], h["values"]):
                dense[r][c] = dense[c][r] = v
        else:
            dense = [[d["hessian"][names[i]][names[j]] for j in range(n)] for i in range(n)]
        for i in range(n):
            for j in range(n):
                want = H[i][j].item()
                assert abs(dense[i][j] - want) <= 1e-9 * (1 + abs(want)), (exprs, w, i, j, dense[i][j], want)
PY
  check "weighted Hessians (dense and sparse) match PyTorch float64 on 15 random vector functions" test $? -eq 0
fi
"$tg" hessian 'x*y*z' --at x=1,y=2,z=3 >"$work/hess.txt"
"$tg" hessian 'x*y; sin(x)*z' --at x=1,y=2,z=3 --weights 1 2>"$work/err.txt"
check "hessian weights must match the expressions" has "$work/err.txt" "1 weights given for 2 expressions"
"$tg" hessian 'x*y; sin(x+' --at x=1,y=2 2>"$work/err.txt"
check "hessian error names the expression" has "$work/err.txt" "expression 2: 1:"
check "hessian table" grep -qE '^ +x +0 +3 +2$' "$work/hess.txt"
"$tg" grad 'x*y + exp(x)' --at x=0,y=2 --jvp x=2,y=5 >"$work/jvp.txt"
check "grad --jvp" has "$work/jvp.txt" "df.v = 6 "
"$tg" grad 'x*y + exp(x)' --at x=0,y=2 --jvp x=1 --json >"$work/jvp.json"
check "grad --jvp json" has "$work/jvp.json" '"jvp": 3'
"$tg" grad 'x*y' --at x=0,y=2 --jvp z=1 2>"$work/err.txt"
check "grad --jvp unknown variable" has "$work/err.txt" "--jvp names 'z', which --at does not"
"$tg" grad 'log(x)' --at x=-1 >"$work/out.txt" 2>"$work/err.txt"
check "grad NaN exit code" test $? -eq 1
check "grad NaN names the op" has "$work/err.txt" "NaN in the forward sweep: scalar node s2 (log)"
"$tg" hessian 'sqrt(x)' --at x=0 2>"$work/err.txt"
check "hessian infinity names the op" has "$work/err.txt" "(sqrt, value 0)"
"$tg" gradcheck --order 2 >"$work/gradcheck2.txt"
check "gradcheck --order 2 exit code" test $? -eq 0
check "gradcheck --order 2 all pass" grep -qE '^[0-9]+ passed, 0 failed$' "$work/gradcheck2.txt"
check "gradcheck --order 2 checks hvp" grep -qE '^matmul hvp ' "$work/gradcheck2.txt"

# Every function of the language (the list its own error gives), with the
# gradient checked against finite differences and a finite Hessian.
"$tg" grad 'nosuch(x)' --at x=1 2>"$work/err.txt"
names=$(sed -n 's/.*(known: \(.*\))$/\1/p' "$work/err.txt")
check "function list has the C library" test "$(echo "$names" | wc -w)" -ge 38
for f in $names; do
  case $f in
    atan2 | hypot | fmod | pow | max | min | fmax | fmin) e="$f(x, y) * x" ;;
    acosh) e="acosh(x + 1) * x" ;;
    *) e="$f(x) * y" ;;
  esac
  "$tg" grad "$e" --at x=0.6,y=1.3 --check >"$work/fn.txt" 2>&1
  check "grad --check $f" test $? -eq 0
  "$tg" hessian "$e" --at x=0.6,y=1.3 >"$work/fnh.txt" 2>&1
  check "hessian $f" test $? -eq 0
done
"$tg" grad 'sin(x)*y' --at x=1,y=2 --json >"$work/sin.json"
check "sin(x)*y gradient" has "$work/sin.json" '"x": 1.0806046117'
"$tg" grad 'sin(x)*y + atan2(x, y)' --at x=1,y=2 --stats >"$work/stats.txt"
check "grad --stats: bytes and nodes by op" grep -qE '^  scalar nodes +7  224 B$' "$work/stats.txt"
check "grad --stats: nodes by op" has "$work/stats.txt" "atan2 1"
"$tg" grad 'x*y' --at x=1,y=2 --stats --json >"$work/stats.json"
check "grad --stats --json" has "$work/stats.json" '"tape": {"scalar_nodes": 4'
# A value that goes bad is an error at the subexpression the user typed.
"$tg" grad 'x + 2*acos(y)' --at x=1,y=2 2>"$work/err.txt"
check "acos(2) exit code" test $? -eq 1
check "acos(2) at its column" has "$work/err.txt" "1:7: acos(y): NaN in the forward sweep"
check "no C++ line in the error" bash -c "! grep -q 'expr.cpp' '$work/err.txt'"
"$tg" grad 'atanh(x)' --at x=1 2>"$work/err.txt"
check "atanh(1) is infinite" has "$work/err.txt" "1:1: atanh(x): infinity in the forward sweep"
"$tg" grad 'x * log2(-1)' --at x=1 2>"$work/err.txt"
check "log2(-1) of a number" has "$work/err.txt" "1:5: log2(-1) is NaN"
"$tg" grad 'y + sqrt(x)' --at x=0,y=1 2>"$work/err.txt"
check "sqrt(0): the backward sweep's infinity at its subexpression" \
  has "$work/err.txt" "1:5: sqrt(x): infinity in the backward sweep"
"$tg" grad 'atan2(x)' --at x=1 2>"$work/err.txt"
check "arity error" has "$work/err.txt" "atan2() takes 2 arguments, got 1"

echo "cli: $pass passed, $fail failed"
test "$fail" -eq 0
