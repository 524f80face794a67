#pragma once
// Nonlinear optimisation with Ipopt, derivatives by tapegrad. Write the
// objective and the constraints once, as C++ on Scalar; solve() records
// them, finds the sparsity of the constraint Jacobian and of the
// Lagrangian's Hessian, colors them, and hands Ipopt exact sparse
// derivatives at every iterate (docs/usage.md, "Optimisation with Ipopt").
//
//   tg::ipopt::Problem p;
//   p.x0 = {1, 5, 5, 1};
//   p.x_lower.assign(4, 1.0), p.x_upper.assign(4, 5.0);
//   p.objective = [](auto x) { return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]; };
//   p.constraints = [](auto x) {
//     return std::vector<tg::Scalar>{x[0] * x[1] * x[2] * x[3],
//                                    x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]};
//   };
//   p.g_lower = {25, 40}, p.g_upper = {tg::ipopt::kInf, 40};
//   tg::ipopt::Result r = tg::ipopt::solve(p);   // r.objective == 17.0140173...
//
// Built when Ipopt is found (Debian coinor-libipopt-dev); link the target
// tapegrad::ipopt. This header needs no Ipopt header of its own.
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/scalar.hpp"

namespace tapegrad::ipopt {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

struct Problem {
  std::vector<double> x0;
  // Bounds on x; empty means none. +-kInf for a side without a bound.
  std::vector<double> x_lower, x_upper;
  // Bounds on the constraints: g_lower <= g(x) <= g_upper (equal for an
  // equality). Their size is the number of constraints.
  std::vector<double> g_lower, g_upper;
  std::function<Scalar(std::span<const Scalar>)> objective;
  std::function<std::vector<Scalar>(std::span<const Scalar>)> constraints;
};

struct Options {
  int print_level = 0;  // Ipopt's own output (0 = none, 5 = per iteration)
  double tol = 1e-8;
  int max_iter = 3000;
  // Any other Ipopt option by name, e.g. {"mu_strategy", "adaptive"}.
  std::vector<std::pair<std::string, std::string>> strings;
  std::vector<std::pair<std::string, double>> numbers;
  std::vector<std::pair<std::string, int>> integers;
};

struct Result {
  bool solved = false;  // Ipopt reported success (or an acceptable point)
  int status = 0;       // Ipopt's ApplicationReturnStatus
  std::string message;  // what that status means
  std::vector<double> x, g, lambda, z_lower, z_upper;
  double objective = 0;
  int iterations = 0;
  // Wall time of the whole solve, and of it the share spent in the
  // gradient, the Jacobian and the Hessian (tapegrad's side).
  double seconds = 0, derivative_seconds = 0, setup_seconds = 0;
  std::size_t jacobian_nnz = 0, hessian_nnz = 0;
  std::uint32_t jacobian_colors = 0, hessian_colors = 0;
  bool jacobian_by_rows = false;
  // Calls from Ipopt: objective, gradient, constraints, Jacobian, Hessian.
  std::size_t f_calls = 0, grad_calls = 0, g_calls = 0, jac_calls = 0, hess_calls = 0;
};

// Records the problem at x0 and solves it. Bad sizes, a missing objective,
// or a comparison whose outcome the recorded tape cannot follow are errors
// (tapegrad::Error); Ipopt's own failures are reported in the Result.
Result solve(const Problem& problem, const Options& options = {});

}  // namespace tapegrad::ipopt
