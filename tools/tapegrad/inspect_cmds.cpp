#include "inspect_cmds.hpp"

#include <fmt/format.h>

#include <cmath>

#include "expr.hpp"
#include "json.hpp"
#include "tapegrad/inspect.hpp"
#include "tapegrad/nn.hpp"
#include "tapegrad/registry.hpp"

namespace tapegrad::cli {
namespace {

std::string num(double v) { return fmt::format("{:.10g}", v); }

}  // namespace

int run_grad(const GradOptions& o) {
  Tape tape;
  TapeScope scope(tape);
  const auto values = parse_bindings(o.at);
  Leaves leaves;
  for (const auto& [name, v] : values) leaves[name] = tape.variable(v).named(name);
  Scalar f = parse_expression(o.expression, leaves);
  f.backward();
  GradcheckResult check;
  if (o.check) {
    std::vector<double> at;
    for (const auto& nv : values) at.push_back(nv.second);
    check = gradcheck(
        [&](std::span<const Scalar> xs) {
          Leaves l;
          for (std::size_t i = 0; i < values.size(); ++i) l[values[i].first] = xs[i];
          return parse_expression(o.expression, l);
        },
        at);
  }
  if (!o.dot.empty()) write_graph(to_dot(f, {.title = o.expression}), o.dot);
  if (o.json) {
    std::string s = fmt::format("{{\n  \"expression\": {},\n  \"value\": {},\n  \"gradient\": {{",
                                json_str(o.expression), json_num(f.value()));
    for (std::size_t i = 0; i < values.size(); ++i)
      s += fmt::format("{}\n    {}: {}", i ? "," : "", json_str(values[i].first),
                       json_num(leaves.at(values[i].first).grad()));
    s += values.empty() ? "}" : "\n  }";
    if (o.check) {
      s += fmt::format(",\n  \"check\": {{\"pass\": {}, \"inputs\": [",
                       check.pass ? "true" : "false");
      for (std::size_t i = 0; i < check.inputs.size(); ++i) {
        const auto& r = check.inputs[i];
        s += fmt::format(
            "{}\n    {{\"name\": {}, \"analytic\": {}, \"numeric\": {}, \"abs_error\": {}, "
            "\"pass\": {}}}",
            i ? "," : "", json_str(values[i].first), json_num(r.analytic), json_num(r.numeric),
            json_num(r.max_abs_error), r.pass ? "true" : "false");
      }
      s += "\n  ]}";
    }
    fmt::print("{}\n}}\n", s);
  } else {
    fmt::print("f = {}\nvalue = {}\n", o.expression, num(f.value()));
    for (const auto& [name, v] : values)
      fmt::print("df/d{} = {}\n", name, num(leaves.at(name).grad()));
    if (o.trace) fmt::print("\n{}", trace(f));
    if (o.check) {
      fmt::print("\nfinite-difference check (central, step 1e-6):\n");
      for (std::size_t i = 0; i < check.inputs.size(); ++i) {
        const auto& r = check.inputs[i];
        fmt::print("  {:<8} analytic {:>14.8g}  numeric {:>14.8g}  abs error {:.2e}  {}\n",
                   values[i].first, r.analytic, r.numeric, r.max_abs_error,
                   r.pass ? "pass" : "FAIL");
      }
    }
  }
  return o.check && !check.pass ? 3 : 0;
}

int run_gradcheck(const GradcheckCliOptions& o) {
  struct Row {
    std::string op, shapes;
    double abs_err, rel_err;
    bool pass;
  };
  std::vector<Row> rows;
  std::uint64_t seed = o.seed;
  for (const OpCheckCase& c : op_check_cases()) {
    if (!o.op.empty() && c.op != o.op) continue;
    std::vector<GradcheckInput> inputs;
    std::string shapes;
    for (const Shape& s : c.shapes) {
      Tape scratch;
      TapeScope sc(scratch);
      std::vector<double> v = uniform(s, c.lo, c.hi, seed++).values();
      for (double& x : v)
        if (std::fabs(x) < c.gap) x = x < 0 ? -c.gap - std::fabs(x) : c.gap + x;
      inputs.push_back({s, v, ""});
      if (!shapes.empty()) shapes += " ";
      shapes += s.str();
    }
    const GradcheckResult r = gradcheck(c.fn, inputs);
    double ae = 0, re = 0;
    for (const auto& in : r.inputs)
      ae = std::max(ae, in.max_abs_error), re = std::max(re, in.max_rel_error);
    rows.push_back({c.op, shapes, ae, re, r.pass});
  }
  if (rows.empty()) throw Error(fmt::format("gradcheck: no registered op is named '{}'", o.op));
  bool all = true;
  for (const Row& r : rows) all = all && r.pass;
  if (o.json) {
    std::string s = "{\n  \"pass\": " + std::string(all ? "true" : "false") + ",\n  \"cases\": [";
    for (std::size_t i = 0; i < rows.size(); ++i)
      s += fmt::format(
          "{}\n    {{\"op\": {}, \"shapes\": {}, \"max_abs_error\": {}, \"max_rel_error\": {}, "
          "\"pass\": {}}}",
          i ? "," : "", json_str(rows[i].op), json_str(rows[i].shapes), json_num(rows[i].abs_err),
          json_num(rows[i].rel_err), rows[i].pass ? "true" : "false");
    fmt::print("{}\n  ]\n}}\n", s);
  } else {
    fmt::print("{:<22} {:<22} {:>12} {:>12}  {}\n", "op", "shapes", "max abs err", "max rel err",
               "result");
    for (const Row& r : rows)
      fmt::print("{:<22} {:<22} {:>12.3e} {:>12.3e}  {}\n", r.op, r.shapes, r.abs_err, r.rel_err,
                 r.pass ? "pass" : "FAIL");
    std::size_t failed = 0;
    for (const Row& r : rows) failed += !r.pass;
    fmt::print("\n{} passed, {} failed\n", rows.size() - failed, failed);
  }
  return all ? 0 : 1;
}

int run_example(const ExampleOptions& o) {
  Tape tape;
  TapeScope scope(tape);
  const TensorOptions var64{DType::f64, true};
  std::string title;
  Scalar sroot;
  Tensor troot;
  switch (o.number) {
    case 1: {  // f = (x + y) z
      title = "example 1: f = (x + y) z at x = -2, y = 5, z = -4";
      Scalar x = var(-2).named("x"), y = var(5).named("y"), z = var(-4).named("z");
      Scalar q = (x + y).named("q");
      sroot = (q * z).named("f");
      break;
    }
    case 2: {  // a sigmoid neuron
      title = "example 2: f = sigmoid(w0 x0 + w1 x1 + w2)";
      Scalar w0 = var(2).named("w0"), x0 = var(-1).named("x0"), w1 = var(-3).named("w1"),
             x1 = var(-2).named("x1"), w2 = var(-3).named("w2");
      Scalar p0 = w0 * x0;
      Scalar p1 = w1 * x1;
      Scalar s = p0 + p1;
      sroot = sigmoid(s + w2).named("f");
      break;
    }
    case 3: {  // a 2-2-2 sigmoid network, squared error
      title = "example 3: 2-2-2 sigmoid network, E = 1/2 |a2 - r|^2";
      Tensor x = tensor({0.05, 0.10}, {2, 1}).named("x");
      Tensor r = tensor({0.01, 0.99}, {2, 1}).named("r");
      Tensor a1, a2;
      {
        ScopeName l(tape, "layer 1");
        Tensor W = tensor({{0.15, 0.20}, {0.25, 0.30}}, var64).named("W1");
        Tensor b = tensor({0.35, 0.35}, {2, 1}, var64).named("b1");
        a1 = sigmoid(matmul(W, x) + b);
      }
      {
        ScopeName l(tape, "layer 2");
        Tensor W = tensor({{0.40, 0.45}, {0.50, 0.55}}, var64).named("W2");
        Tensor b = tensor({0.60, 0.60}, {2, 1}, var64).named("b2");
        a2 = sigmoid(matmul(W, a1) + b);
      }
      troot = nn::half_squared_error(a2, r).named("E");
      break;
    }
    case 4: {  // a 2-2-1 network without biases
      title = "example 4: 2-2-1 sigmoid network without biases, target 1";
      Tensor x = tensor({0.23, 0.82}, {2, 1}).named("x");
      Tensor W1 = tensor({{0.1, 0.4}, {0.5, 0.3}}, var64).named("W1 (w1 w3; w2 w4)");
      Tensor W2 = tensor({{0.2, 0.6}}, var64).named("W2 (w5 w6)");
      Tensor h = sigmoid(matmul(W1, x)).named("h");
      Tensor y = sigmoid(matmul(W2, h)).named("y");
      troot = nn::half_squared_error(y, tensor({1.0}, {1, 1})).named("E");
      break;
    }
    default:
      throw Error(fmt::format("example: there are worked examples 1 to 4, not {}", o.number));
  }
  const bool scalar = o.number <= 2;
  if (scalar)
    sroot.backward();
  else
    troot.backward();
  fmt::print("{}\n", title);
  if (o.trace || o.dot.empty()) fmt::print("\n{}", scalar ? trace(sroot) : trace(troot));
  bool ok = true;
  if (o.check) {
    const NodeCheckResult r = scalar ? check_nodes(sroot) : check_nodes(troot);
    fmt::print("\nper-node check:\n{}", r.str());
    ok = r.pass;
  }
  if (!o.dot.empty()) {
    write_graph(scalar ? to_dot(sroot, {.title = title}) : to_dot(troot, {.title = title}), o.dot);
    fmt::print("wrote {}\n", o.dot);
  }
  return ok ? 0 : 3;
}

}  // namespace tapegrad::cli
