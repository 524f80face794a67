// tapegrad::ipopt::solve: the problem recorded as vector functions, and
// Ipopt's TNLP callbacks answered from them (sparse.hpp).
#include "tapegrad/ipopt.hpp"

#include <fmt/format.h>
#include <IpIpoptApplication.hpp>
#include <IpSolveStatistics.hpp>
#include <IpTNLP.hpp>

#include <chrono>
#include <cmath>
#include <optional>

#include "tapegrad/sparse.hpp"
#include "tapegrad/tape_scope.hpp"

namespace tapegrad::ipopt {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

const char* status_text(Ipopt::ApplicationReturnStatus s) {
  switch (s) {
    case Ipopt::Solve_Succeeded:
      return "solved";
    case Ipopt::Solved_To_Acceptable_Level:
      return "solved to an acceptable level";
    case Ipopt::Infeasible_Problem_Detected:
      return "the problem looks infeasible";
    case Ipopt::Search_Direction_Becomes_Too_Small:
      return "the search direction became too small";
    case Ipopt::Diverging_Iterates:
      return "the iterates diverge";
    case Ipopt::User_Requested_Stop:
      return "stopped by request";
    case Ipopt::Feasible_Point_Found:
      return "a feasible point was found";
    case Ipopt::Maximum_Iterations_Exceeded:
      return "the iteration limit was reached";
    case Ipopt::Restoration_Failed:
      return "the restoration phase failed";
    case Ipopt::Error_In_Step_Computation:
      return "error in the step computation";
    case Ipopt::Maximum_CpuTime_Exceeded:
      return "the time limit was reached";
    case Ipopt::Not_Enough_Degrees_Of_Freedom:
      return "not enough degrees of freedom";
    case Ipopt::Invalid_Problem_Definition:
      return "invalid problem definition";
    case Ipopt::Invalid_Option:
      return "invalid option";
    case Ipopt::Invalid_Number_Detected:
      return "an evaluation gave NaN or infinity";
    default:
      return "Ipopt failed";
  }
}

// The recorded problem: the objective alone, the constraints alone (their
// Jacobian), and both as one function [f, g] (the Lagrangian's Hessian
// with weights [sigma, lambda]).
struct Recorded {
  VectorFunction f, g, fg;
  std::optional<SparseJacobian> jac;
  std::optional<SparseHessian> hess;
};

VectorFunction record(std::span<const double> x0, const Problem& p, bool with_f, bool with_g,
                      std::size_t m) {
  return VectorFunction::record(x0, [&](std::span<const Scalar> x) {
    std::vector<Scalar> out;
    if (with_f) out.push_back(p.objective(x));
    if (with_g) {
      std::vector<Scalar> g = p.constraints(x);
      if (g.size() != m)
        throw Error(
            fmt::format("ipopt::solve: the constraints gave {} values; g_lower and g_upper have {}",
                        g.size(), m));
      out.insert(out.end(), g.begin(), g.end());
    }
    return out;
  });
}

class Nlp : public Ipopt::TNLP {
 public:
  Nlp(const Problem& p, Recorded& r, Result& res) : p_(p), r_(r), res_(res) {}

  bool get_nlp_info(Ipopt::Index& n, Ipopt::Index& m, Ipopt::Index& nnz_jac, Ipopt::Index& nnz_h,
                    IndexStyleEnum& style) override {
    n = static_cast<Ipopt::Index>(p_.x0.size());
    m = static_cast<Ipopt::Index>(p_.g_lower.size());
    nnz_jac = r_.jac ? static_cast<Ipopt::Index>(r_.jac->nnz()) : 0;
    nnz_h = static_cast<Ipopt::Index>(r_.hess->nnz());
    style = C_STYLE;
    return true;
  }
  bool get_bounds_info(Ipopt::Index n, Ipopt::Number* xl, Ipopt::Number* xu, Ipopt::Index m,
                       Ipopt::Number* gl, Ipopt::Number* gu) override {
    const auto clip = [](double v) { return std::isinf(v) ? (v < 0 ? -1e19 : 1e19) : v; };
    for (Ipopt::Index i = 0; i < n; ++i) {
      xl[i] = p_.x_lower.empty() ? -1e19 : clip(p_.x_lower[i]);
      xu[i] = p_.x_upper.empty() ? 1e19 : clip(p_.x_upper[i]);
    }
    for (Ipopt::Index i = 0; i < m; ++i) gl[i] = clip(p_.g_lower[i]), gu[i] = clip(p_.g_upper[i]);
    return true;
  }
  bool get_starting_point(Ipopt::Index n, bool init_x, Ipopt::Number* x, bool, Ipopt::Number*,
                          Ipopt::Number*, Ipopt::Index, bool, Ipopt::Number*) override {
    if (init_x) std::copy_n(p_.x0.begin(), n, x);
    return true;
  }
  // A comparison that flips makes the point unusable for this recording:
  // Ipopt treats a false return as an evaluation error and backs off.
  template <class F>
  bool guarded(F&& f, bool derivative) {
    const auto t0 = Clock::now();
    try {
      f();
    } catch (const BranchChanged&) {
      return false;
    }
    if (derivative) res_.derivative_seconds += since(t0);
    return true;
  }
  std::span<const double> xs(const Ipopt::Number* x) const { return {x, p_.x0.size()}; }

  bool eval_f(Ipopt::Index, const Ipopt::Number* x, bool, Ipopt::Number& obj) override {
    ++res_.f_calls;
    return guarded([&] { r_.f.values(xs(x), std::span<double>(&obj, 1)); }, false);
  }
  bool eval_grad_f(Ipopt::Index n, const Ipopt::Number* x, bool, Ipopt::Number* grad) override {
    ++res_.grad_calls;
    const double one = 1.0;
    return guarded(
        [&] {
          r_.f.vjp(xs(x), std::span<const double>(&one, 1), {grad, std::size_t(n)});
        },
        true);
  }
  bool eval_g(Ipopt::Index, const Ipopt::Number* x, bool, Ipopt::Index m,
              Ipopt::Number* g) override {
    ++res_.g_calls;
    if (m == 0) return true;
    return guarded([&] { r_.g.values(xs(x), {g, std::size_t(m)}); }, false);
  }
  bool eval_jac_g(Ipopt::Index, const Ipopt::Number* x, bool, Ipopt::Index, Ipopt::Index nele,
                  Ipopt::Index* rows, Ipopt::Index* cols, Ipopt::Number* values) override {
    if (!r_.jac) return true;
    if (!values) {  // the structure, once
      for (Ipopt::Index k = 0; k < nele; ++k)
        rows[k] = static_cast<Ipopt::Index>(r_.jac->rows()[k]),
        cols[k] = static_cast<Ipopt::Index>(r_.jac->cols()[k]);
      return true;
    }
    ++res_.jac_calls;
    return guarded([&] { r_.jac->evaluate(xs(x), {values, std::size_t(nele)}); }, true);
  }
  bool eval_h(Ipopt::Index, const Ipopt::Number* x, bool, Ipopt::Number sigma, Ipopt::Index m,
              const Ipopt::Number* lambda, bool, Ipopt::Index nele, Ipopt::Index* rows,
              Ipopt::Index* cols, Ipopt::Number* values) override {
    if (!values) {
      for (Ipopt::Index k = 0; k < nele; ++k)
        rows[k] = static_cast<Ipopt::Index>(r_.hess->rows()[k]),
        cols[k] = static_cast<Ipopt::Index>(r_.hess->cols()[k]);
      return true;
    }
    ++res_.hess_calls;
    w_.assign(1, sigma);
    w_.insert(w_.end(), lambda, lambda + m);
    return guarded([&] { r_.hess->evaluate(xs(x), w_, {values, std::size_t(nele)}); }, true);
  }
  void finalize_solution(Ipopt::SolverReturn, Ipopt::Index n, const Ipopt::Number* x,
                         const Ipopt::Number* zl, const Ipopt::Number* zu, Ipopt::Index m,
                         const Ipopt::Number* g, const Ipopt::Number* lambda, Ipopt::Number obj,
                         const Ipopt::IpoptData*, Ipopt::IpoptCalculatedQuantities*) override {
    res_.x.assign(x, x + n);
    res_.z_lower.assign(zl, zl + n);
    res_.z_upper.assign(zu, zu + n);
    res_.g.assign(g, g + m);
    res_.lambda.assign(lambda, lambda + m);
    res_.objective = obj;
  }

 private:
  const Problem& p_;
  Recorded& r_;
  Result& res_;
  std::vector<double> w_;
};

void check(const Problem& p) {
  const std::size_t n = p.x0.size(), m = p.g_lower.size();
  if (n == 0) throw Error("ipopt::solve: x0 is empty; give the starting point");
  if (!p.objective) throw Error("ipopt::solve: no objective given");
  const auto sized = [&](const std::vector<double>& v, const char* name) {
    if (!v.empty() && v.size() != n)
      throw Error(
          fmt::format("ipopt::solve: {} has {} entries for {} variables", name, v.size(), n));
  };
  sized(p.x_lower, "x_lower");
  sized(p.x_upper, "x_upper");
  if (p.g_upper.size() != m)
    throw Error(
        fmt::format("ipopt::solve: g_lower has {} entries and g_upper {}", m, p.g_upper.size()));
  if (m > 0 && !p.constraints)
    throw Error(fmt::format("ipopt::solve: {} constraint bounds given but no constraints", m));
  for (std::size_t i = 0; i < n; ++i)
    if (!p.x_lower.empty() && !p.x_upper.empty() && p.x_lower[i] > p.x_upper[i])
      throw Error(fmt::format("ipopt::solve: x_lower[{}] = {} is above x_upper[{}] = {}", i,
                              p.x_lower[i], i, p.x_upper[i]));
  for (std::size_t i = 0; i < m; ++i)
    if (p.g_lower[i] > p.g_upper[i])
      throw Error(fmt::format("ipopt::solve: g_lower[{}] = {} is above g_upper[{}] = {}", i,
                              p.g_lower[i], i, p.g_upper[i]));
}

}  // namespace

Result solve(const Problem& problem, const Options& options) {
  check(problem);
  const auto t0 = Clock::now();
  const std::size_t m = problem.g_lower.size();
  Recorded r{
      record(problem.x0, problem, true, false, m),
      m ? record(problem.x0, problem, false, true, m) : record(problem.x0, problem, true, false, m),
      record(problem.x0, problem, true, m > 0, m), std::nullopt, std::nullopt};
  Result res;
  if (m) {
    r.jac.emplace(r.g);
    res.jacobian_nnz = r.jac->nnz();
    res.jacobian_colors = r.jac->colors();
    res.jacobian_by_rows = r.jac->by_rows();
  }
  r.hess.emplace(r.fg);
  res.hessian_nnz = r.hess->nnz();
  res.hessian_colors = r.hess->colors();
  res.setup_seconds = since(t0);

  Ipopt::SmartPtr<Ipopt::IpoptApplication> app = IpoptApplicationFactory();
  app->Options()->SetIntegerValue("print_level", options.print_level);
  app->Options()->SetNumericValue("tol", options.tol);
  app->Options()->SetIntegerValue("max_iter", options.max_iter);
  if (options.print_level == 0) app->Options()->SetStringValue("sb", "yes");  // no banner
  for (const auto& [k, v] : options.strings)
    if (!app->Options()->SetStringValue(k, v))
      throw Error(fmt::format("ipopt::solve: Ipopt rejects option {} = '{}'", k, v));
  for (const auto& [k, v] : options.numbers)
    if (!app->Options()->SetNumericValue(k, v))
      throw Error(fmt::format("ipopt::solve: Ipopt rejects option {} = {}", k, v));
  for (const auto& [k, v] : options.integers)
    if (!app->Options()->SetIntegerValue(k, v))
      throw Error(fmt::format("ipopt::solve: Ipopt rejects option {} = {}", k, v));
  if (app->Initialize() != Ipopt::Solve_Succeeded)
    throw Error("ipopt::solve: Ipopt failed to initialise (see its output)");
  Ipopt::SmartPtr<Ipopt::TNLP> nlp = new Nlp(problem, r, res);
  const Ipopt::ApplicationReturnStatus st = app->OptimizeTNLP(nlp);
  res.status = static_cast<int>(st);
  res.message = status_text(st);
  res.solved = st == Ipopt::Solve_Succeeded || st == Ipopt::Solved_To_Acceptable_Level;
  if (Ipopt::SmartPtr<Ipopt::SolveStatistics> s = app->Statistics(); Ipopt::IsValid(s))
    res.iterations = s->IterationCount();
  res.seconds = since(t0);
  return res;
}

}  // namespace tapegrad::ipopt
