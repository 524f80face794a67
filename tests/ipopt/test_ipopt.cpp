// Optimisation with Ipopt (ipopt.hpp): Hock-Schittkowski 71 reaches its
// published optimum, and a hanging chain of 10^4 variables reaches the
// catenary's energy, which the test derives on its own.
#include <tapegrad/ipopt.hpp>

#include <cmath>

#include "helpers.hpp"

namespace ip = tapegrad::ipopt;

TEST_CASE("Hock-Schittkowski 71 reaches 17.0140173", "[ipopt]") {
  ip::Problem p;
  p.x0 = {1, 5, 5, 1};
  p.x_lower.assign(4, 1.0);
  p.x_upper.assign(4, 5.0);
  p.objective = [](std::span<const tg::Scalar> x) {
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2];
  };
  p.constraints = [](std::span<const tg::Scalar> x) {
    return std::vector<tg::Scalar>{x[0] * x[1] * x[2] * x[3],
                                   x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]};
  };
  p.g_lower = {25, 40};
  p.g_upper = {ip::kInf, 40};
  const ip::Result r = ip::solve(p);
  INFO(r.message);
  REQUIRE(r.solved);
  CHECK(r.objective == Approx(17.0140173).epsilon(1e-8));
  // The published solution (Hock and Schittkowski, 1981).
  const std::vector<double> want{1.0, 4.74299963, 3.82114998, 1.37940829};
  for (int i = 0; i < 4; ++i) CHECK(r.x[i] == Approx(want[i]).epsilon(1e-6));
  CHECK(r.jacobian_nnz == 8);
  CHECK(r.hessian_nnz == 10);  // the whole lower triangle
  CHECK(r.iterations > 0);
  CHECK(r.iterations < 20);
  CHECK(r.jac_calls > 0);
  CHECK(r.hess_calls > 0);
}

namespace {
// The continuous hanging chain (length 4 between heights 1 and 3 over
// [0, 1]) hangs as x(t) = C cosh((t - D) / C) - lambda; C and D solve the
// two end conditions, by Newton's method with tapegrad's Jacobian.
double catenary_energy() {
  const double a = 1, b = 3, L = 4;
  const auto residual = [&](std::span<const tg::Scalar> z) {
    const tg::Scalar &C = z[0], &D = z[1];
    return std::vector<tg::Scalar>{C * (tg::cosh((1.0 - D) / C) - tg::cosh(D / C)) - (b - a),
                                   C * (tg::sinh((1.0 - D) / C) + tg::sinh(D / C)) - L};
  };
  std::vector<double> z{0.2, 0.4}, f(2), J(4);
  const tg::VectorFunction F = tg::VectorFunction::record(z, residual);
  for (int it = 0; it < 50; ++it) {
    F.jacobian(z, J, f);
    const double det = J[0] * J[3] - J[1] * J[2];
    z[0] -= (J[3] * f[0] - J[1] * f[1]) / det;
    z[1] -= (-J[2] * f[0] + J[0] * f[1]) / det;
  }
  F.values(z, f);
  REQUIRE(std::abs(f[0]) + std::abs(f[1]) < 1e-12);
  const double C = z[0], D = z[1], lambda = C * std::cosh(D / C) - a;
  REQUIRE(C > 0);  // the hanging solution, not the inverted one
  return C / 2 * (1 + C / 2 * (std::sinh(2 * (1 - D) / C) + std::sinh(2 * D / C))) - lambda * L;
}
}  // namespace

TEST_CASE("a hanging chain of 10^4 variables reaches the catenary", "[ipopt]") {
  // Heights x_0..x_N and slopes u_0..u_N on a grid of N intervals; the
  // trapezoid rule for the energy, the length and x' = u.
  const int N = 5000;
  const double h = 1.0 / N, a = 1, b = 3, L = 4;
  ip::Problem p;
  p.x0.resize(2 * (N + 1));
  for (int i = 0; i <= N; ++i) {
    const double t = i * h;
    p.x0[i] = a + (b - a) * t + 4 * t * (t - 1);
    p.x0[N + 1 + i] = (b - a) + 4 * (2 * t - 1);
  }
  p.x_lower.assign(p.x0.size(), -ip::kInf);
  p.x_upper.assign(p.x0.size(), ip::kInf);
  p.x_lower[0] = p.x_upper[0] = a;
  p.x_lower[N] = p.x_upper[N] = b;
  p.objective = [&](std::span<const tg::Scalar> v) {
    tg::Scalar e = 0.0;
    for (int i = 0; i <= N; ++i) {
      const tg::Scalar w = v[i] * tg::sqrt(1.0 + v[N + 1 + i] * v[N + 1 + i]);
      e = e + ((i == 0 || i == N) ? 0.5 * h : h) * w;
    }
    return e;
  };
  p.constraints = [&](std::span<const tg::Scalar> v) {
    std::vector<tg::Scalar> g;
    for (int i = 0; i < N; ++i)
      g.push_back(v[i + 1] - v[i] - 0.5 * h * (v[N + 1 + i] + v[N + 2 + i]));
    tg::Scalar len = 0.0;
    for (int i = 0; i <= N; ++i)
      len = len + ((i == 0 || i == N) ? 0.5 * h : h) * tg::sqrt(1.0 + v[N + 1 + i] * v[N + 1 + i]);
    g.push_back(len);
    return g;
  };
  p.g_lower.assign(N + 1, 0.0);
  p.g_upper.assign(N + 1, 0.0);
  p.g_lower[N] = p.g_upper[N] = L;
  const ip::Result r = ip::solve(p);
  INFO(r.message);
  REQUIRE(r.solved);
  const double want = catenary_energy();
  CHECK(want == Approx(5.0685).epsilon(1e-4));  // COPS reports 5.0685 for this chain
  CHECK(r.objective == Approx(want).epsilon(1e-6));
  CHECK(r.x.size() == 10002u);
  // The constraint Jacobian's dense length row forces row groups: a few
  // reverse sweeps, not 10^4 forward ones.
  CHECK(r.jacobian_by_rows);
  CHECK(r.jacobian_colors <= 4);
  CHECK(r.hessian_colors <= 3);
  CHECK(r.derivative_seconds < r.seconds);
}

TEST_CASE("ipopt::solve reports bad problems clearly", "[ipopt]") {
  ip::Problem p;
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("x0 is empty"));
  p.x0 = {1, 2};
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("no objective"));
  p.objective = [](std::span<const tg::Scalar> x) { return x[0] * x[0] + x[1] * x[1]; };
  p.x_lower = {0};
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("x_lower has 1 entries for 2 variables"));
  p.x_lower = {0, 3};
  p.x_upper = {1, 2};
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("x_lower[1] = 3 is above x_upper[1] = 2"));
  p.x_lower.clear(), p.x_upper.clear();
  p.g_lower = {1};
  p.g_upper = {1};
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("no constraints"));
  p.constraints = [](std::span<const tg::Scalar> x) { return std::vector<tg::Scalar>{x[0], x[1]}; };
  CHECK_THROWS_WITH(ip::solve(p), Catch::Contains("the constraints gave 2 values"));
  p.constraints = [](std::span<const tg::Scalar> x) {
    return std::vector<tg::Scalar>{x[0] + x[1]};
  };
  ip::Options o;
  o.strings = {{"no_such_option", "x"}};
  CHECK_THROWS_WITH(ip::solve(p, o), Catch::Contains("no_such_option"));
  // Unconstrained in the bounds sense, one equality: min x^2 + y^2, x + y = 1.
  const ip::Result r = ip::solve(p);
  REQUIRE(r.solved);
  CHECK(r.objective == Approx(0.5).epsilon(1e-8));
}
