#include "inspect_cmds.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "expr.hpp"
#include "json.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/inspect.hpp"
#include "tapegrad/nn.hpp"
#include "tapegrad/registry.hpp"
#include "tapegrad/replay.hpp"

namespace tapegrad::cli {
namespace {

std::string num(double v) { return fmt::format("{:.10g}", v); }

}  // namespace

namespace {

using Bindings = std::vector<std::pair<std::string, double>>;

// The --at points: the first names the variables; every other point must
// give the same names (in any order), and is reordered to match.
std::vector<Bindings> parse_points(const std::vector<std::string>& at) {
  std::vector<Bindings> points;
  for (const std::string& text : at) points.push_back(parse_bindings(text));
  if (points.empty()) points.emplace_back();
  for (std::size_t k = 1; k < points.size(); ++k) {
    Bindings ordered;
    for (const auto& [name, _] : points[0]) {
      const auto it = std::find_if(points[k].begin(), points[k].end(),
                                   [&](const auto& nv) { return nv.first == name; });
      if (it == points[k].end())
        throw Error(fmt::format("--at point {} ('{}') gives no value for '{}', which point 1 names",
                                k + 1, at[k], name));
      ordered.push_back(*it);
    }
    if (points[k].size() != ordered.size())
      for (const auto& [name, _] : points[k])
        if (std::none_of(points[0].begin(), points[0].end(),
                         [&](const auto& nv) { return nv.first == name; }))
          throw Error(fmt::format("--at point {} ('{}') names '{}', which point 1 does not", k + 1,
                                  at[k], name));
    points[k] = std::move(ordered);
  }
  return points;
}

struct PointResult {
  double value;
  std::vector<double> grad;
  GradcheckResult check;
  double jvp = 0;
};

// The --jvp direction, in the order of the point's variables ({} if none).
std::vector<double> direction(const std::string& text, const Bindings& vars) {
  if (text.empty()) return {};
  const Bindings given = parse_bindings(text);
  std::vector<double> v(vars.size(), 0.0);
  for (const auto& [name, value] : given) {
    const auto it =
        std::find_if(vars.begin(), vars.end(), [&](const auto& nv) { return nv.first == name; });
    if (it == vars.end()) throw Error(fmt::format("--jvp names '{}', which --at does not", name));
    v[static_cast<std::size_t>(it - vars.begin())] = value;
  }
  return v;
}

std::string point_json(const Bindings& at, const PointResult& r, bool with_check, bool with_jvp,
                       const std::string& indent) {
  std::string s =
      fmt::format("{}\"value\": {},\n{}\"gradient\": {{", indent, json_num(r.value), indent);
  for (std::size_t i = 0; i < at.size(); ++i)
    s += fmt::format("{}\n{}  {}: {}", i ? "," : "", indent, json_str(at[i].first),
                     json_num(r.grad[i]));
  s += at.empty() ? "}" : "\n" + indent + "}";
  if (with_jvp) s += fmt::format(",\n{}\"jvp\": {}", indent, json_num(r.jvp));
  if (with_check) {
    s += fmt::format(",\n{}\"check\": {{\"pass\": {}, \"inputs\": [", indent,
                     r.check.pass ? "true" : "false");
    for (std::size_t i = 0; i < r.check.inputs.size(); ++i) {
      const auto& c = r.check.inputs[i];
      s += fmt::format(
          "{}\n{}  {{\"name\": {}, \"analytic\": {}, \"numeric\": {}, \"abs_error\": {}, "
          "\"pass\": {}}}",
          i ? "," : "", indent, json_str(at[i].first), json_num(c.analytic), json_num(c.numeric),
          json_num(c.max_abs_error), c.pass ? "true" : "false");
    }
    s += "\n" + indent + "]}";
  }
  return s;
}

void print_point(const Bindings& at, const PointResult& r) {
  fmt::print("value = {}\n", num(r.value));
  for (std::size_t i = 0; i < at.size(); ++i)
    fmt::print("df/d{} = {}\n", at[i].first, num(r.grad[i]));
}
void print_check(const Bindings& at, const PointResult& r) {
  {
    fmt::print("\nfinite-difference check (central, step 1e-6):\n");
    for (std::size_t i = 0; i < r.check.inputs.size(); ++i) {
      const auto& c = r.check.inputs[i];
      fmt::print("  {:<8} analytic {:>14.8g}  numeric {:>14.8g}  abs error {:.2e}  {}\n",
                 at[i].first, c.analytic, c.numeric, c.max_abs_error, c.pass ? "pass" : "FAIL");
    }
  }
}

}  // namespace

// Records the expression once, at the first point, and replays the tape at
// every other point (the expression language has no comparisons, so the
// recorded tape is the function everywhere).
namespace {
int run_grad_in(const GradOptions& o, Spans& spans) {
  const std::vector<Bindings> points = parse_points(o.at);
  if (points.size() > 1 && (!o.dot.empty() || !o.html.empty()))
    throw Error(fmt::format("--{} draws one point; {} --at points were given",
                            o.dot.empty() ? "html" : "dot", points.size()));
  Tape tape;
  TapeScope scope(tape);
  DetectAnomaly anomaly(tape);  // a NaN or an infinity is an error naming its op
  const Bindings& first = points[0];
  const std::vector<double> dir = direction(o.jvp, first);
  Leaves leaves;
  std::vector<Scalar> inputs;
  for (const auto& [name, v] : first) {
    leaves[name] = tape.variable(v).named(name);
    inputs.push_back(leaves[name]);
  }
  Scalar f = parse_expression(o.expression, leaves, &spans);
  Function fn(tape, inputs, f);
  std::vector<PointResult> results;
  std::vector<double> x(first.size());
  bool all_pass = true;
  for (const Bindings& at : points) {
    for (std::size_t i = 0; i < at.size(); ++i) x[i] = at[i].second;
    PointResult r{0, std::vector<double>(at.size()), {}};
    r.value = fn.gradient(x, r.grad);
    if (!dir.empty()) r.jvp = jvp({f}, std::vector<Ref>(inputs.begin(), inputs.end()), dir)[0];
    if (o.check) {
      r.check = gradcheck(
          [&](std::span<const Scalar> xs) {
            Leaves l;
            for (std::size_t i = 0; i < at.size(); ++i) l[at[i].first] = xs[i];
            return parse_expression(o.expression, l);
          },
          x);
      all_pass = all_pass && r.check.pass;
    }
    if (!o.json) {
      if (points.size() == 1) {
        fmt::print("f = {}\n", o.expression);
      } else {
        std::string where;
        for (const auto& [name, v] : at)
          where += fmt::format("{}{}={}", where.empty() ? "" : ",", name, num(v));
        fmt::print("{}f = {} at {}\n", results.empty() ? "" : "\n", o.expression, where);
      }
      print_point(at, r);
      if (!dir.empty()) fmt::print("df.v = {}   (along v = {})\n", num(r.jvp), o.jvp);
      if (o.trace) fmt::print("\n{}", trace(f));
      if (o.check) print_check(at, r);
    }
    results.push_back(std::move(r));
  }
  if (o.stats && !o.json) fmt::print("\n{}", tape.memory().str());
  if (!o.dot.empty()) write_graph(to_dot(f, {.title = o.expression}), o.dot);
  if (!o.html.empty()) write_html(f, o.html, {.title = "f = " + o.expression});
  if (o.json) {
    std::string s = fmt::format("{{\n  \"expression\": {},\n", json_str(o.expression));
    if (points.size() == 1) {
      s += point_json(first, results[0], o.check, !dir.empty(), "  ");
    } else {
      s += "  \"points\": [";
      for (std::size_t k = 0; k < points.size(); ++k) {
        s += fmt::format("{}\n    {{\n      \"at\": {{", k ? "," : "");
        for (std::size_t i = 0; i < points[k].size(); ++i)
          s += fmt::format("{}{}: {}", i ? ", " : "", json_str(points[k][i].first),
                           json_num(points[k][i].second));
        s +=
            "},\n" + point_json(points[k], results[k], o.check, !dir.empty(), "      ") + "\n    }";
      }
      s += "\n  ]";
    }
    if (o.stats) {
      const TapeMemory m = tape.memory();
      s += fmt::format(
          ",\n  \"tape\": {{\"scalar_nodes\": {}, \"tensor_nodes\": {}, \"bytes_in_use\": {}, "
          "\"bytes_held\": {}, \"peak_bytes\": {}}}",
          m.scalar_nodes, m.tensor_nodes, m.in_use(), m.held(), m.peak_bytes);
    }
    fmt::print("{}\n}}\n", s);
  }
  return o.check && !all_pass ? 3 : 0;
}
}  // namespace

// Errors of the sweeps at a node of the expression point into the expression.
int run_grad(const GradOptions& o) {
  Spans spans;
  try {
    return run_grad_in(o, spans);
  } catch (const AnomalyError& e) {
    rethrow_in_expression(e, spans);
  }
}

int run_gradcheck(const GradcheckCliOptions& o) {
  if (o.order != 1 && o.order != 2)
    throw Error(fmt::format("gradcheck: --order is 1 or 2, not {}", o.order));
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
    const GradcheckResult r =
        o.order == 2 ? gradcheck_order2(c.fn, inputs) : gradcheck(c.fn, inputs);
    if (o.order == 2) {  // one row per check: jvp, hvp, adjoint
      for (const auto& in : r.inputs)
        rows.push_back({c.op + " " + in.name, shapes, in.max_abs_error, in.max_rel_error, in.pass});
      continue;
    }
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
  DetectAnomaly anomaly(tape);  // keeps every node's source line for the page and the checks
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
  if (o.trace || (o.dot.empty() && o.html.empty()))
    fmt::print("\n{}", scalar ? trace(sroot) : trace(troot));
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
  if (!o.html.empty()) {
    if (scalar)
      write_html(sroot, o.html, {.title = title});
    else
      write_html(troot, o.html, {.title = title});
    fmt::print("wrote {}\n", o.html);
  }
  return ok ? 0 : 3;
}

}  // namespace tapegrad::cli
