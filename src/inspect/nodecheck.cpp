// The per-node check: each op's backward rule against central differences of
// its own forward, at the inputs the tape recorded. It names the first node
// whose rule is wrong, so a bad op is found without bisecting a whole graph.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/rules.hpp"
#include "inspect/graph.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {
namespace {

// The forward of a built-in scalar op (NaN for ops it does not know): the
// op's own rule (math_rules.hpp); e is the node, whose weights are a lin
// node's rule.
double scalar_forward(ScalarOp op, double a, double b, const ScalarEdges& e) {
  if (op == ScalarOp::lin) return detail::lin_value(a, b, e.da, e.db, e.b != 0);
  if (op == ScalarOp::custom) return detail::user_function_first(e.db, a).v;
  if (!scalar_op_math(op)) return NAN;
  return detail::eval(op, a, b).v;
}

struct Tally {
  double max_abs = 0, max_rel = 0;
  bool fail = false, kink = false;
  std::string detail;
  void add(double analytic, double numeric, double fwd, double bwd, const GradcheckOptions& o,
           const std::string& where) {
    const double err = std::fabs(analytic - numeric);
    const double rel = err / std::max(std::fabs(numeric), 1e-12);
    const double tol = o.atol + o.rtol * std::fabs(numeric);
    const bool bad = !(err <= tol);
    // A kink: the two one-sided slopes disagree, so no derivative exists here.
    const bool kinked = std::fabs(fwd - bwd) > o.atol + o.rtol * (std::fabs(fwd) + std::fabs(bwd));
    if (bad && kinked) {
      kink = true;
    } else if (bad) {
      if (!fail || err > max_abs)
        detail = fmt::format("{}: analytic {}, numeric {}", where, analytic, numeric);
      fail = true;
    }
    if (!kinked) {
      max_abs = std::max(max_abs, std::isnan(err) ? INFINITY : err);
      max_rel = std::max(max_rel, std::isnan(rel) ? INFINITY : rel);
    }
  }
};

NodeCheck check_scalar(const Tape& tape, std::uint32_t s, const GradcheckOptions& o) {
  const std::string name = tape.scalar_op(s) == ScalarOp::custom
                               ? detail::user_function_name(tape, s)
                               : std::string(scalar_op_name(tape.scalar_op(s)));
  NodeCheck c{{false, s}, name, "", "pass", 0, 0, "", tape.origin(NodeKind::scalar, s)};
  const ScalarOp op = tape.scalar_op(s);
  const auto ins = detail::inputs_of(tape, {false, s});
  if (op == ScalarOp::item || op == ScalarOp::compare) {
    c.status = "skipped (no scalar forward rule)";
    return c;
  }
  const ScalarEdges& e = tape.scalar_edges(s);
  // Operands by slot: an input's value, or a plain number kept on the node.
  const double a = tape.scalar_operand(s, 0), b = tape.scalar_operand(s, 1);
  Tally t;
  for (const auto& in : ins) {
    const bool first = in.slot == 0;
    const auto f = [&](double d) {
      return first ? scalar_forward(op, a + d, b, e) : scalar_forward(op, a, b + d, e);
    };
    const double h = o.eps, f0 = f(0), fp = f(h), fm = f(-h);
    t.add(first ? e.da : e.db, (fp - fm) / (2 * h), (fp - f0) / h, (f0 - fm) / h, o,
          fmt::format("input {}", first ? "a" : "b"));
  }
  c.max_abs_error = t.max_abs, c.max_rel_error = t.max_rel, c.detail = t.detail;
  c.status = t.fail ? "FAIL" : (t.kink ? "kink (not differentiable here)" : "pass");
  return c;
}

NodeCheck check_tensor(Tape& tape, std::uint32_t ti, const GradcheckOptions& o) {
  TensorNode& n = tape.tensor_node(ti);
  NodeCheck c{{true, ti},
              n.op->name,
              n.scope == kNone ? "" : tape.scope_names()[n.scope],
              "pass",
              0,
              0,
              "",
              tape.origin(NodeKind::tensor, ti)};
  if (!n.op->forward || !n.op->backward) {
    c.status = "skipped (no forward rule)";
    return c;
  }
  if (n.dtype != DType::f64) {
    c.status = "skipped (float32: check in float64)";
    return c;
  }
  if (!n.requires_grad) {
    c.status = "skipped (takes no gradient)";
    return c;
  }
  auto* out = static_cast<double*>(n.value);
  const std::int64_t m = n.shape.numel();
  // A fixed random seed r: the check compares r . J against finite differences.
  std::vector<double> r(static_cast<std::size_t>(m));
  std::mt19937_64 rng(o.seed + ti);
  std::uniform_real_distribution<double> u(0.5, 1.5);
  for (double& x : r) x = u(rng);
  // Analytic: run the node's rule alone with grad = r.
  void* saved_grad = n.grad;
  Buffer saved_buf = std::move(n.grad_buf);
  Buffer seed(static_cast<std::size_t>(m) * sizeof(double));
  if (m) std::memcpy(seed.data(), r.data(), static_cast<std::size_t>(m) * sizeof(double));
  n.grad = seed.data();
  const auto analytic = detail::tensor_edge_grads(tape, ti);
  TensorNode& n2 = tape.tensor_node(ti);
  n2.grad = saved_grad;
  n2.grad_buf = std::move(saved_buf);
  const auto objective = [&] {
    tape.tensor_node(ti).op->forward(tape, ti);
    double s = 0;
    for (std::int64_t i = 0; i < m; ++i) s += r[static_cast<std::size_t>(i)] * out[i];
    return s;
  };
  const auto ins = detail::inputs_of(tape, {true, ti});
  Tally t;
  for (std::size_t k = 0; k < ins.size(); ++k) {
    if (analytic[k].empty()) continue;  // that input takes no gradient
    const NodeId in = ins[k].from;
    double* x = nullptr;
    std::int64_t len = 1;
    if (in.tensor) {
      x = static_cast<double*>(tape.tensor_node(in.index).value);
      len = tape.tensor_node(in.index).shape.numel();
    }
    const auto get = [&](std::int64_t j) { return x ? x[j] : tape.scalar_value(in.index); };
    const auto set = [&](std::int64_t j, double v) {
      if (x)
        x[j] = v;
      else
        tape.set_scalar_value(in.index, v);
    };
    const auto slope = [&](const std::vector<double>& dir, double& fwd, double& bwd) {
      std::vector<double> keep(static_cast<std::size_t>(len));
      for (std::int64_t j = 0; j < len; ++j) keep[static_cast<std::size_t>(j)] = get(j);
      const auto shift = [&](double h) {
        for (std::int64_t j = 0; j < len; ++j)
          set(j, keep[static_cast<std::size_t>(j)] + h * dir[static_cast<std::size_t>(j)]);
        return objective();
      };
      const double f0 = shift(0), fp = shift(o.eps), fm = shift(-o.eps);
      for (std::int64_t j = 0; j < len; ++j) set(j, keep[static_cast<std::size_t>(j)]);
      fwd = (fp - f0) / o.eps, bwd = (f0 - fm) / o.eps;
      return (fp - fm) / (2 * o.eps);
    };
    if (len <= o.max_elements) {
      for (std::int64_t j = 0; j < len; ++j) {
        std::vector<double> dir(static_cast<std::size_t>(len), 0.0);
        dir[static_cast<std::size_t>(j)] = 1;
        double fwd, bwd;
        const double num = slope(dir, fwd, bwd);
        t.add(analytic[k][static_cast<std::size_t>(j)], num, fwd, bwd, o,
              fmt::format("input {} ({}) element {}", k, in.str(), j));
      }
    } else {
      std::normal_distribution<double> g;
      for (int d = 0; d < o.directions; ++d) {
        std::vector<double> dir(static_cast<std::size_t>(len));
        double a = 0;
        for (std::size_t j = 0; j < dir.size(); ++j) dir[j] = g(rng), a += dir[j] * analytic[k][j];
        double fwd, bwd;
        const double num = slope(dir, fwd, bwd);
        t.add(a, num, fwd, bwd, o, fmt::format("input {} ({}) direction {}", k, in.str(), d));
      }
    }
  }
  objective();  // leave the recorded value as it was
  c.max_abs_error = t.max_abs, c.max_rel_error = t.max_rel, c.detail = t.detail;
  c.status = t.fail ? "FAIL" : (t.kink ? "kink (not differentiable here)" : "pass");
  return c;
}

NodeCheckResult run(Tape& tape, NodeId root, const GradcheckOptions& o) {
  NodeCheckResult res;
  for (const NodeId& n : detail::ancestors(tape, root)) {
    if (detail::inputs_of(tape, n).empty()) continue;
    res.nodes.push_back(n.tensor ? check_tensor(tape, n.index, o) : check_scalar(tape, n.index, o));
    if (res.nodes.back().status == "FAIL") res.pass = false;
  }
  return res;
}

}  // namespace

const NodeCheck* NodeCheckResult::first_failure() const {
  for (const NodeCheck& c : nodes)
    if (c.status == "FAIL") return &c;
  return nullptr;
}

std::string NodeCheckResult::str() const {
  std::string s = fmt::format("{:<7} {:<22} {:<10} {:>12} {:>12}  {}\n", "node", "op", "scope",
                              "max abs err", "max rel err", "result");
  for (const NodeCheck& c : nodes) {
    s += fmt::format("{:<7} {:<22} {:<10} {:>12.3e} {:>12.3e}  {}", c.id.str(), c.op,
                     c.scope.empty() ? "-" : c.scope, c.max_abs_error, c.max_rel_error, c.status);
    if (!c.detail.empty()) s += "  [" + c.detail + "]";
    s += "\n";
  }
  if (const NodeCheck* f = first_failure())
    s += fmt::format("first failing node: {} ({}{}{}){}{}\n", f->id.str(), f->op,
                     f->scope.empty() ? "" : ", in ", f->scope, f->origin.empty() ? "" : ", ",
                     f->origin);
  return s;
}

NodeCheckResult check_nodes(const Scalar& root, const GradcheckOptions& opt) {
  Tape& tape = root.checked("check_nodes");
  return run(tape, {false, root.index()}, opt);
}
NodeCheckResult check_nodes(const Tensor& root, const GradcheckOptions& opt) {
  Tape& tape = root.checked("check_nodes");
  return run(tape, {true, root.index()}, opt);
}

}  // namespace tapegrad
