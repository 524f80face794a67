// User-defined functions: a ScalarFunction from its value and derivatives,
// and an ExternalFunction (a black box with a VJP), against finite
// differences, on Scalar, Real and Tensor, replayed, inspected by name, and
// with the errors a missing rule must give.
#include <tapegrad/inspect.hpp>
#include <tapegrad/registry.hpp>
#include <tapegrad/userfn.hpp>

#include <cmath>

#include "helpers.hpp"

namespace {
using S = std::span<const tg::Scalar>;

double sig(double x) { return 1 / (1 + std::exp(-x)); }
const tg::ScalarFunction& softplus() {
  static const tg::ScalarFunction f(
      "softplus", {.value = [](double x) { return std::log1p(std::exp(x)); },
                   .derivative = [](double x, double) { return sig(x); },
                   .second = [](double x, double) { return sig(x) * (1 - sig(x)); }});
  return f;
}
// A function without a second derivative.
const tg::ScalarFunction& cube_first_only() {
  static const tg::ScalarFunction f("cube", {.value = [](double x) { return x * x * x; },
                                             .derivative = [](double x, double) { return 3 * x * x; },
                                             .second = nullptr});
  return f;
}

// A 2x2 linear solve as a black box: y = A^-1 b with A = [[a0, a1], [a2, a3]].
// VJP: b_bar = A^-T y_bar, A_bar = -b_bar y^T.
void solve2(const double* A, const double* b, double* y) {
  const double det = A[0] * A[3] - A[1] * A[2];
  y[0] = (A[3] * b[0] - A[1] * b[1]) / det;
  y[1] = (-A[2] * b[0] + A[0] * b[1]) / det;
}
const tg::ExternalFunction& solver(bool with_jvp) {
  static const auto forward = [](tg::ExternalFunctionRules::Inputs x, std::span<double> y) {
    solve2(x[0].data(), x[1].data(), y.data());
  };
  static const auto vjp = [](tg::ExternalFunctionRules::Inputs x, std::span<const double> y,
                             std::span<const double> ybar, std::span<const std::span<double>> xbar) {
    const double* A = x[0].data();
    const double At[4] = {A[0], A[2], A[1], A[3]};
    double bb[2];
    solve2(At, ybar.data(), bb);
    for (int i = 0; i < 2; ++i) xbar[1][i] += bb[i];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) xbar[0][i * 2 + j] -= bb[i] * y[j];
  };
  // JVP: y_dot = A^-1 (b_dot - A_dot y).
  static const auto jvp = [](tg::ExternalFunctionRules::Inputs x, std::span<const double> y,
                             tg::ExternalFunctionRules::Inputs xd, std::span<double> yd) {
    const double* Ad = xd[0].data();
    const double r[2] = {xd[1][0] - Ad[0] * y[0] - Ad[1] * y[1], xd[1][1] - Ad[2] * y[0] - Ad[3] * y[1]};
    solve2(x[0].data(), r, yd.data());
  };
  static const tg::ExternalFunction full("solve2", {forward, vjp, jvp});
  static const tg::ExternalFunction first("solve2_vjp_only", {forward, vjp, nullptr});
  return with_jvp ? full : first;
}
}  // namespace

TEST_CASE("a user's scalar function is one node with its name, right to second order",
          "[userfn]") {
  const auto& sp = softplus();
  for (double v : {-2.0, 0.3, 1.7}) {
    const tg::ScalarFn f = [&sp](S x) { return sp(x[0] * x[1]) + sp(x[1]) * 2.0; };
    const tg::GradcheckResult r1 = tg::gradcheck(f, {v, 0.6});
    INFO(r1.str());
    CHECK(r1.pass);
    const tg::GradcheckResult r2 = tg::gradcheck_order2(f, {v, 0.6});
    INFO(r2.str());
    CHECK(r2.pass);
  }
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(0.5).named("x");
  const std::size_t before = tape.scalar_count();
  tg::Scalar y = sp(x);
  CHECK(tape.scalar_count() == before + 1);
  CHECK(y.value() == std::log1p(std::exp(0.5)));
  y.backward();
  CHECK(x.grad() == sig(0.5));
  CHECK(tg::to_dot(y).find("softplus") != std::string::npos);
  CHECK(tg::trace(y).find("softplus") != std::string::npos);
  const tg::NodeCheckResult nc = tg::check_nodes(y);
  CHECK(nc.pass);
  CHECK(nc.nodes.back().op == "softplus");
  CHECK(nc.nodes.back().status == "pass");
}

TEST_CASE("a user's scalar function on Real and element-wise on Tensor", "[userfn]") {
  const auto& sp = softplus();
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Real r = tg::var(0.8);
  tg::Real y = sp(r * 2.0 - 1.0);
  y.backward();
  CHECK(y.value() == Approx(std::log1p(std::exp(0.6))));
  CHECK(r.grad() == Approx(2 * sig(0.6)));
  for (tg::DType dt : {tg::DType::f64, tg::DType::f32}) {
    tg::Tensor t = tg::tensor({-1.0, 0.0, 2.0}, {3}, {dt, true});
    tg::sum(sp(t)).backward();
    const std::vector<double> g = t.grads();
    CHECK(g[0] == Approx(sig(-1.0)).epsilon(1e-6));
    CHECK(g[2] == Approx(sig(2.0)).epsilon(1e-6));
  }
  std::vector<tg::GradcheckInput> in{input({2, 3}, 5)};
  const tg::GradcheckResult r2 =
      tg::gradcheck_order2([&sp](std::span<const tg::Tensor> x) { return sp(x[0] * x[0]); }, in);
  INFO(r2.str());
  CHECK(r2.pass);
  // register_check puts it beside the built-in ops in the registry.
  sp.register_check(-2, 2);
  bool found = false;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) found = found || c.op == "softplus/scalar";
  CHECK(found);
}

TEST_CASE("a user's scalar function replays; a missing second derivative is named", "[userfn]") {
  const auto& cube = cube_first_only();
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(1.5);
  tg::Scalar f = cube(x) * softplus()(x);
  tg::Function fn(tape, {x}, f);
  std::vector<double> g(1);
  const double v = fn.gradient(std::vector<double>{0.4}, g);
  CHECK(v == Approx(0.064 * std::log1p(std::exp(0.4))));
  CHECK(g[0] == Approx(3 * 0.16 * std::log1p(std::exp(0.4)) + 0.064 * sig(0.4)));
  CHECK_THROWS_WITH(fn.optimize(), Catch::Contains("user function"));
  tg::Tape t2;
  tg::TapeScope s2(t2);
  tg::Scalar z = tg::var(0.7);
  tg::Scalar h = cube(z);
  CHECK_THROWS_WITH(tg::hessian(h, {z}), Catch::Contains("'cube' has no second derivative"));
  tg::DetectAnomaly on;
  tg::Scalar w = tg::var(1e200);
  CHECK_THROWS_WITH(cube(w), Catch::Contains("(cube)"));
}

TEST_CASE("an external function is one node whose VJP the sweep calls", "[userfn]") {
  const tg::TensorFn f = [](std::span<const tg::Tensor> x) {
    return tg::sum(tg::exp(solver(true)({x[0], x[1]}, {2})));
  };
  std::vector<tg::GradcheckInput> in{{{4}, {2.0, 0.5, -0.3, 1.5}, "A"}, {{2}, {1.0, -2.0}, "b"}};
  const tg::GradcheckResult r1 = tg::gradcheck(f, in);
  INFO(r1.str());
  CHECK(r1.pass);
  // Forward mode through the user's JVP.
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor A = tg::tensor({2.0, 0.5, -0.3, 1.5}, {4}, {tg::DType::f64, true});
  tg::Tensor b = tg::tensor({1.0, -2.0}, {2}, {tg::DType::f64, true});
  tg::Tensor y = solver(true)({A, b}, {2});
  CHECK(tape.tensor_count() == 3);  // A, b, and the box
  const std::vector<double> yv = y.values();
  CHECK(2.0 * yv[0] + 0.5 * yv[1] == Approx(1.0));
  CHECK(-0.3 * yv[0] + 1.5 * yv[1] == Approx(-2.0));
  CHECK(tg::to_dot(tg::sum(y)).find("solve2") != std::string::npos);
  // Without a JVP, forward mode names the function.
  tg::Tensor y2 = solver(false)({A, b}, {2});
  const std::vector<double> v(6, 1.0);
  CHECK_THROWS_WITH(tg::hvp(tg::sum(y2 * y2), {A, b}, v), Catch::Contains("solve2_vjp_only"));
}

TEST_CASE("an external function on Scalars", "[userfn]") {
  // On Scalars the box sees one input of all their values: here A's four
  // and b's two.
  static const tg::ExternalFunction flat(
      "solve2_flat",
      {[](tg::ExternalFunctionRules::Inputs x, std::span<double> y) {
         solve2(x[0].data(), x[0].data() + 4, y.data());
       },
       [](tg::ExternalFunctionRules::Inputs x, std::span<const double> y,
          std::span<const double> ybar, std::span<const std::span<double>> xbar) {
         const double* A = x[0].data();
         const double At[4] = {A[0], A[2], A[1], A[3]};
         double bb[2];
         solve2(At, ybar.data(), bb);
         for (int i = 0; i < 2; ++i) xbar[0][4 + i] += bb[i];
         for (int i = 0; i < 2; ++i)
           for (int j = 0; j < 2; ++j) xbar[0][i * 2 + j] -= bb[i] * y[j];
       },
       nullptr});
  const tg::ScalarFn f = [](S x) {
    const std::vector<tg::Scalar> y = flat(x, 2);
    return y[0] * y[1] + y[0];
  };
  const tg::GradcheckResult r = tg::gradcheck(f, {2.0, 0.5, -0.3, 1.5, 1.0, -2.0});
  INFO(r.str());
  CHECK(r.pass);
}

TEST_CASE("user functions refuse incomplete rules", "[userfn][errors]") {
  CHECK_THROWS_WITH(tg::ScalarFunction("bad", {[](double x) { return x; }, nullptr, nullptr}),
                    Catch::Contains("give both value and derivative"));
  CHECK_THROWS_WITH(tg::ExternalFunction("bad", {nullptr, nullptr, nullptr}), Catch::Contains("give both forward and vjp"));
}
