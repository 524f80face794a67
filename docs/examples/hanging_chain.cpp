// A hanging chain of length 4 between heights 1 and 3 (the COPS problem),
// discretised on N intervals: 2(N + 1) variables, N + 1 constraints, solved
// by Ipopt with tapegrad's sparse derivatives (docs/usage.md, "Optimisation
// with Ipopt"). Prints Ipopt's iterations and where the time went; exits
// non-zero unless the energy is the catenary's, 5.0684801110 (derived in
// tests/ipopt/test_ipopt.cpp), to the discretisation's accuracy.
//   example_hanging_chain [N]      (N = 5000 by default: 10,002 variables)
#include <tapegrad/ipopt.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tg = tapegrad;
namespace ip = tapegrad::ipopt;

int main(int argc, char** argv) {
  const int N = argc > 1 ? std::atoi(argv[1]) : 5000;
  const double h = 1.0 / N, a = 1, b = 3, L = 4;
  const auto weight = [&](int i) { return (i == 0 || i == N) ? 0.5 * h : h; };  // trapezoid
  ip::Problem p;  // x_0..x_N (heights), then u_0..u_N (slopes)
  p.x0.resize(2 * (N + 1));
  for (int i = 0; i <= N; ++i) {
    const double t = i * h;
    p.x0[i] = a + (b - a) * t + 4 * t * (t - 1);
    p.x0[N + 1 + i] = (b - a) + 4 * (2 * t - 1);
  }
  p.x_lower.assign(p.x0.size(), -ip::kInf);
  p.x_upper.assign(p.x0.size(), ip::kInf);
  p.x_lower[0] = p.x_upper[0] = a;  // the ends are fixed
  p.x_lower[N] = p.x_upper[N] = b;
  p.objective = [&](std::span<const tg::Scalar> v) {  // potential energy
    tg::Scalar e = 0.0;
    for (int i = 0; i <= N; ++i)
      e = e + weight(i) * v[i] * tg::sqrt(1.0 + v[N + 1 + i] * v[N + 1 + i]);
    return e;
  };
  p.constraints = [&](std::span<const tg::Scalar> v) {
    std::vector<tg::Scalar> g;
    for (int i = 0; i < N; ++i)  // x' = u, by the trapezoid rule
      g.push_back(v[i + 1] - v[i] - 0.5 * h * (v[N + 1 + i] + v[N + 2 + i]));
    tg::Scalar len = 0.0;
    for (int i = 0; i <= N; ++i)
      len = len + weight(i) * tg::sqrt(1.0 + v[N + 1 + i] * v[N + 1 + i]);
    g.push_back(len);
    return g;
  };
  p.g_lower.assign(N + 1, 0.0);
  p.g_upper.assign(N + 1, 0.0);
  p.g_lower[N] = p.g_upper[N] = L;
  const ip::Result r = ip::solve(p);
  std::printf("%zu variables, %zu constraints: %s after %d iterations\n", p.x0.size(),
              p.g_lower.size(), r.message.c_str(), r.iterations);
  std::printf("energy %.10f (the catenary: 5.0684801110)\n", r.objective);
  std::printf("Jacobian %zu nonzeros in %u %s groups; Hessian %zu nonzeros in %u colors\n",
              r.jacobian_nnz, r.jacobian_colors, r.jacobian_by_rows ? "row" : "column",
              r.hessian_nnz, r.hessian_colors);
  std::printf(
      "solve %.3f s: set-up (recording, patterns, colorings) %.3f s, derivatives %.3f s "
      "(%.0f%%), Ipopt's own work the rest\n",
      r.seconds, r.setup_seconds, r.derivative_seconds, 100 * r.derivative_seconds / r.seconds);
  std::printf("calls: f %zu, gradient %zu, g %zu, Jacobian %zu, Hessian %zu\n", r.f_calls,
              r.grad_calls, r.g_calls, r.jac_calls, r.hess_calls);
  return r.solved && std::abs(r.objective - 5.0684801110) < 1e-5 ? 0 : 1;
}
