#include "tapegrad/gradcheck.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "tapegrad/higher.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {
namespace {

// The checked objective of an output y: y itself when it has one element,
// else sum(y * r) with a fixed random r (drawn once into `proj`).
Tensor objective(const Tensor& y, std::vector<double>& proj) {
  if (y.dtype() != DType::f64)
    throw Error("gradcheck: the function must keep float64 (its output is float32)");
  if (y.numel() == 1) return y;
  if (proj.size() != static_cast<std::size_t>(y.numel())) {
    std::mt19937_64 rng(0x5eed);
    std::uniform_real_distribution<double> u(0.5, 1.5);
    proj.resize(static_cast<std::size_t>(y.numel()));
    for (double& r : proj) r = u(rng);
  }
  return sum(mul(y, tensor(proj, y.shape())));
}

// Evaluates f at `vals` on `tape` (cleared first) and returns the scalar
// objective; when `grads` is given, also runs backward and fills it.
double evaluate(Tape& tape, const TensorFn& f, const std::vector<GradcheckInput>& inputs,
                const std::vector<std::vector<double>>& vals, std::vector<double>* proj_seed,
                std::vector<std::vector<double>>* grads) {
  tape.clear();
  TapeScope scope(tape);
  std::vector<Tensor> leaves;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    leaves.push_back(tensor(vals[i], inputs[i].shape, {DType::f64, grads != nullptr}));
  const Tensor obj = objective(f(leaves), *proj_seed);
  const double v = obj.value(0);
  if (grads) {
    obj.backward();
    grads->clear();
    for (const Tensor& l : leaves) grads->push_back(l.grads());
  }
  return v;
}

void record(GradcheckReport& r, std::int64_t idx, double a, double n, const GradcheckOptions& o) {
  const double abs_err = std::fabs(a - n);
  const double rel_err = abs_err / std::max(std::fabs(n), 1e-12);
  const bool bad = !(abs_err <= o.atol + o.rtol * std::fabs(n));  // NaN fails
  if (abs_err > r.max_abs_error || std::isnan(abs_err) || r.worst_index < 0) {
    r.worst_index = idx, r.analytic = a, r.numeric = n;
  }
  r.max_abs_error = std::max(r.max_abs_error, std::isnan(abs_err) ? INFINITY : abs_err);
  r.max_rel_error = std::max(r.max_rel_error, std::isnan(rel_err) ? INFINITY : rel_err);
  if (bad) r.pass = false;
}

// ---- second order ----

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// One recording of f at a point: its leaves, its output y and the objective.
struct Point {
  std::vector<Ref> leaves;
  Ref y, obj;
};

// The checks, given a way to record f at x (flattened) on a cleared tape.
template <class Record>
GradcheckResult check(Record&& rec, const std::vector<double>& x0, const GradcheckOptions& opt) {
  std::mt19937_64 rng(opt.seed);
  std::normal_distribution<double> normal;
  GradcheckReport jv{"jvp", {}}, hv{"hvp", {}}, adj{"adjoint", {}};
  const auto values = [](const Ref& r) {
    return r.is_tensor() ? r.tensor().values() : std::vector<double>{r.scalar().value()};
  };
  const auto gradient = [](const Point& p) {
    return vjp({p.obj}, p.leaves, std::vector<double>{1.0});
  };
  for (int d = 0; d < opt.directions; ++d) {
    std::vector<double> v(x0.size());
    for (double& e : v) e = normal(rng);
    const auto shifted = [&](double s) {
      std::vector<double> x = x0;
      for (std::size_t k = 0; k < x.size(); ++k) x[k] += s * v[k];
      return x;
    };
    Point p = rec(x0);
    const std::vector<double> Jv = jvp({p.y}, p.leaves, v);
    std::vector<double> u(Jv.size());
    for (double& e : u) e = normal(rng);
    const std::vector<double> JTu = vjp({p.y}, p.leaves, u);
    record(adj, d, dot(u, Jv), dot(JTu, v), opt);
    const std::vector<double> Hv = hvp(p.obj, p.leaves, v);
    Point pp = rec(shifted(opt.eps));
    const std::vector<double> yp = values(pp.y), gp = gradient(pp);
    Point pm = rec(shifted(-opt.eps));
    const std::vector<double> ym = values(pm.y), gm = gradient(pm);
    const auto base = static_cast<std::int64_t>(d) * 1000000;
    for (std::size_t i = 0; i < Jv.size(); ++i)
      record(jv, base + static_cast<std::int64_t>(i), Jv[i], (yp[i] - ym[i]) / (2 * opt.eps), opt);
    for (std::size_t i = 0; i < Hv.size(); ++i)
      record(hv, base + static_cast<std::int64_t>(i), Hv[i], (gp[i] - gm[i]) / (2 * opt.eps), opt);
  }
  GradcheckResult res;
  for (GradcheckReport* r : {&jv, &hv, &adj}) {
    res.pass = res.pass && r->pass;
    res.inputs.push_back(*r);
  }
  return res;
}

}  // namespace

GradcheckResult gradcheck(const TensorFn& f, const std::vector<GradcheckInput>& inputs,
                          const GradcheckOptions& opt) {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (static_cast<std::int64_t>(inputs[i].values.size()) != inputs[i].shape.numel())
      throw Error(fmt::format("gradcheck: input {} has {} values for shape {}", i,
                              inputs[i].values.size(), inputs[i].shape.str()));
  Tape tape;
  std::vector<std::vector<double>> vals;
  for (const auto& in : inputs) vals.push_back(in.values);
  std::vector<double> proj;
  std::vector<std::vector<double>> grads;
  evaluate(tape, f, inputs, vals, &proj, &grads);

  GradcheckResult res;
  std::mt19937_64 rng(opt.seed);
  std::normal_distribution<double> normal;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    GradcheckReport rep;
    rep.name = inputs[i].name.empty() ? fmt::format("x{}", i) : inputs[i].name;
    rep.shape = inputs[i].shape;
    const auto n = static_cast<std::int64_t>(vals[i].size());
    const auto central = [&](const std::vector<double>& dir) {
      auto plus = vals, minus = vals;
      for (std::size_t k = 0; k < dir.size(); ++k) {
        plus[i][k] += opt.eps * dir[k];
        minus[i][k] -= opt.eps * dir[k];
      }
      const double fp = evaluate(tape, f, inputs, plus, &proj, nullptr);
      const double fm = evaluate(tape, f, inputs, minus, &proj, nullptr);
      return (fp - fm) / (2 * opt.eps);
    };
    if (n <= opt.max_elements) {
      for (std::int64_t k = 0; k < n; ++k) {
        std::vector<double> dir(static_cast<std::size_t>(n), 0.0);
        dir[static_cast<std::size_t>(k)] = 1.0;
        record(rep, k, grads[i][static_cast<std::size_t>(k)], central(dir), opt);
      }
    } else {
      for (int d = 0; d < opt.directions; ++d) {
        std::vector<double> dir(static_cast<std::size_t>(n));
        double a = 0;
        for (std::size_t k = 0; k < dir.size(); ++k)
          dir[k] = normal(rng), a += dir[k] * grads[i][k];
        record(rep, d, a, central(dir), opt);
      }
    }
    res.pass = res.pass && rep.pass;
    res.inputs.push_back(rep);
  }
  return res;
}

GradcheckResult gradcheck(const ScalarFn& f, const std::vector<double>& inputs,
                          const GradcheckOptions& opt) {
  Tape tape;
  const auto eval = [&](const std::vector<double>& x, std::vector<double>* grads) {
    tape.clear();
    TapeScope scope(tape);
    std::vector<Scalar> leaves;
    for (double v : x) leaves.push_back(var(v));
    Scalar y = f(leaves);
    const double v = y.value();
    if (grads) {
      y.backward();
      grads->clear();
      for (const Scalar& l : leaves) grads->push_back(l.grad());
    }
    return v;
  };
  std::vector<double> grads;
  eval(inputs, &grads);
  GradcheckResult res;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    GradcheckReport rep;
    rep.name = fmt::format("x{}", i);
    auto p = inputs, m = inputs;
    p[i] += opt.eps, m[i] -= opt.eps;
    record(rep, 0, grads[i], (eval(p, nullptr) - eval(m, nullptr)) / (2 * opt.eps), opt);
    res.pass = res.pass && rep.pass;
    res.inputs.push_back(rep);
  }
  return res;
}

std::string GradcheckResult::str() const {
  std::string s = fmt::format("{:<10} {:<12} {:>12} {:>12} {:>14} {:>14}  {}\n", "input", "shape",
                              "max abs err", "max rel err", "analytic", "numeric", "result");
  for (const auto& r : inputs)
    s += fmt::format("{:<10} {:<12} {:>12.3e} {:>12.3e} {:>14.8g} {:>14.8g}  {}\n", r.name,
                     r.shape.str(), r.max_abs_error, r.max_rel_error, r.analytic, r.numeric,
                     r.pass ? "pass" : "FAIL");
  return s;
}

// The second-order check: forward mode against finite differences of the
// function, Hessian-vector products against finite differences of the
// gradient, and forward against reverse mode.
GradcheckResult gradcheck_order2(const TensorFn& f, const std::vector<GradcheckInput>& inputs,
                                 const GradcheckOptions& opt) {
  std::vector<double> x0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (static_cast<std::int64_t>(inputs[i].values.size()) != inputs[i].shape.numel())
      throw Error(fmt::format("gradcheck: input {} has {} values for shape {}", i,
                              inputs[i].values.size(), inputs[i].shape.str()));
    x0.insert(x0.end(), inputs[i].values.begin(), inputs[i].values.end());
  }
  Tape tape;
  std::vector<double> proj;
  const auto rec = [&](const std::vector<double>& x) {
    tape.clear();
    TapeScope scope(tape);
    std::vector<Tensor> leaves;
    std::size_t off = 0;
    for (const GradcheckInput& in : inputs) {
      const auto n = static_cast<std::size_t>(in.shape.numel());
      leaves.push_back(
          tensor(std::span<const double>(x.data() + off, n), in.shape, {DType::f64, true}));
      off += n;
    }
    const Tensor y = f(leaves);
    const Tensor obj = objective(y, proj);
    return Point{std::vector<Ref>(leaves.begin(), leaves.end()), y, obj};
  };
  return check(rec, x0, opt);
}

GradcheckResult gradcheck_order2(const ScalarFn& f, const std::vector<double>& inputs,
                                 const GradcheckOptions& opt) {
  Tape tape;
  const auto rec = [&](const std::vector<double>& x) {
    tape.clear();
    TapeScope scope(tape);
    std::vector<Scalar> leaves;
    for (double v : x) leaves.push_back(var(v));
    const Scalar y = f(leaves);
    return Point{std::vector<Ref>(leaves.begin(), leaves.end()), y, y};
  };
  return check(rec, inputs, opt);
}

}  // namespace tapegrad
