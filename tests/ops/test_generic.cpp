// Generic code written for double, instantiated unchanged with tg::Scalar and
// tg::Real: argument-dependent lookup of the math functions (`using std::sin;
// sin(x)`), std::max on two values, compound assignment, double and int
// literals, `T sum = 0;`, and comparisons in ifs. Each gradient is checked
// against central differences of the double instantiation itself.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "helpers.hpp"

namespace {

// ---- three realistic generic functions, as a user would have them ----

// A damped pendulum, theta'' = -g/l sin(theta) - c theta', integrated by
// classic RK4; returns the final angle.
template <class T>
T pendulum(T theta, T omega, T damping, int steps) {
  using std::sin;
  const double dt = 0.01, g_over_l = 9.81;
  for (int i = 0; i < steps; ++i) {
    const T k1t = omega;
    const T k1w = -g_over_l * sin(theta) - damping * omega;
    const T k2t = omega + 0.5 * dt * k1w;
    const T k2w = -g_over_l * sin(theta + 0.5 * dt * k1t) - damping * k2t;
    const T k3t = omega + 0.5 * dt * k2w;
    const T k3w = -g_over_l * sin(theta + 0.5 * dt * k2t) - damping * k3t;
    const T k4t = omega + dt * k3w;
    const T k4w = -g_over_l * sin(theta + dt * k3t) - damping * k4t;
    theta += dt / 6 * (k1t + 2 * k2t + 2 * k3t + k4t);
    omega += dt / 6 * (k1w + 2 * k2w + 2 * k3w + k4w);
  }
  return theta;
}

// A planar arm: a chain of rigid-body transforms (rotation, then a link of
// length l along the new x axis); returns the squared distance of the tip
// from a target.
template <class T>
T arm_tip_error(const std::vector<T>& joints, double tx, double ty) {
  using std::cos;
  using std::sin;
  using std::atan2;
  using std::hypot;
  std::array<T, 4> R{T(1), T(0), T(0), T(1)};  // row-major 2x2
  T px = 0, py = 0;
  const double lengths[] = {1.0, 0.8, 0.5, 0.3};
  for (std::size_t i = 0; i < joints.size(); ++i) {
    const T c = cos(joints[i]), s = sin(joints[i]);
    const std::array<T, 4> Rn{R[0] * c + R[1] * s, -R[0] * s + R[1] * c, R[2] * c + R[3] * s,
                              -R[2] * s + R[3] * c};
    R = Rn;
    px += lengths[i % 4] * R[0];
    py += lengths[i % 4] * R[2];
  }
  const T dist = hypot(px - tx, py - ty);
  const T heading = atan2(py, px);
  return dist * dist + 0.1 * heading * heading;
}

// Statistics: the log-likelihood of a Gaussian mixture of two components,
// with the log-sum-exp stabilised by std::max and a branch on the data.
template <class T>
T mixture_loglik(const std::vector<double>& data, T mu0, T mu1, T log_sigma, T logit_w) {
  using std::exp;
  using std::log;
  using std::log1p;
  using std::max;
  const T sigma = exp(log_sigma);
  const T w = 1.0 / (1.0 + exp(-logit_w));
  T total = 0;
  for (double x : data) {
    T a = log(w) - 0.5 * ((x - mu0) / sigma) * ((x - mu0) / sigma);
    T b = log(1 - w) - 0.5 * ((x - mu1) / sigma) * ((x - mu1) / sigma);
    const T m = max(a, b);
    T lse = m + log(exp(a - m) + exp(b - m));
    if (lse < -50.0) lse = T(-50.0);  // a floor on outliers: the comparison is recorded
    total += lse - log_sigma;
  }
  return total / static_cast<double>(data.size()) + log1p(exp(-logit_w * logit_w));
}

// ---- the same functions as ScalarFns, with T = Scalar or Real ----

template <class T>
tg::Scalar call(int which, std::span<const tg::Scalar> x) {
  std::vector<T> v(x.begin(), x.end());
  switch (which) {
    case 0:
      return pendulum<T>(v[0], v[1], v[2], 60);
    case 1:
      return arm_tip_error<T>(v, 0.9, 1.2);
    default:
      return mixture_loglik<T>({-1.2, -0.4, 0.3, 0.9, 1.7, 2.4, 9.0}, v[0], v[1], v[2], v[3]);
  }
}
double call_double(int which, const std::vector<double>& v) {
  switch (which) {
    case 0:
      return pendulum<double>(v[0], v[1], v[2], 60);
    case 1:
      return arm_tip_error<double>(v, 0.9, 1.2);
    default:
      return mixture_loglik<double>({-1.2, -0.4, 0.3, 0.9, 1.7, 2.4, 9.0}, v[0], v[1], v[2], v[3]);
  }
}
const std::vector<std::vector<double>> kPoints{
    {0.8, -0.3, 0.15}, {0.4, -0.7, 1.1, 0.3}, {-0.5, 1.4, 0.2, 0.4}};

}  // namespace

TEST_CASE("generic code for double runs unchanged on Scalar and Real, with the right gradient",
          "[generic][math]") {
  for (int which = 0; which < 3; ++which) {
    INFO("function " << which);
    const std::vector<double>& x = kPoints[which];
    std::vector<double> gs, gr;
    double vs = 0, vr = 0;
    for (int kind = 0; kind < 2; ++kind) {
      tg::Tape tape;
      tg::TapeScope scope(tape);
      std::vector<tg::Scalar> in;
      for (double v : x) in.push_back(tg::var(v));
      tg::Scalar f = kind == 0 ? call<tg::Scalar>(which, in) : call<tg::Real>(which, in);
      f.backward();
      (kind == 0 ? vs : vr) = f.value();
      for (const tg::Scalar& s : in) (kind == 0 ? gs : gr).push_back(s.grad());
    }
    // The value is the double code's, to rounding.
    CHECK(vs == Approx(call_double(which, x)).epsilon(1e-13));
    CHECK(vr == Approx(vs).epsilon(1e-13));
    // The gradient against central differences of the double code.
    for (std::size_t i = 0; i < x.size(); ++i) {
      std::vector<double> p = x, m = x;
      const double h = 1e-6;
      p[i] += h, m[i] -= h;
      const double fd = (call_double(which, p) - call_double(which, m)) / (2 * h);
      INFO("input " << i);
      CHECK(gs[i] == Approx(fd).epsilon(1e-6).margin(1e-8));
      CHECK(gr[i] == Approx(gs[i]).epsilon(1e-12).margin(1e-14));
    }
    // And through the library's own checks, to second order.
    const tg::ScalarFn f = [which](std::span<const tg::Scalar> v) { return call<tg::Scalar>(which, v); };
    const tg::GradcheckResult r = tg::gradcheck_order2(f, x);
    INFO(r.str());
    CHECK(r.pass);
  }
}

TEST_CASE("the branch of generic code is recorded: replay names it when it flips",
          "[generic][replay]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  std::vector<tg::Scalar> in;
  for (double v : kPoints[2]) in.push_back(tg::var(v));
  tg::Scalar f = call<tg::Scalar>(2, in);
  tg::Function fn(tape, in, f);
  std::vector<double> g(4);
  std::vector<double> near = kPoints[2];
  near[0] += 0.01;
  CHECK_NOTHROW(fn.gradient(near, g));
  // A mixture so narrow that the outlier at 9 sinks below the floor: the
  // recorded `lse < -50` goes the other way.
  std::vector<double> narrow = kPoints[2];
  narrow[2] = -1.5;
  CHECK_THROWS_AS(fn.gradient(narrow, g), tg::BranchChanged);
}

TEST_CASE("a plain number converts to a constant where generic code needs a T", "[generic]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar zero = 0;   // `T sum = 0;`
  tg::Real one = 1.0;    // `T x = 1.0;`
  CHECK(zero.value() == 0.0);
  CHECK(one.value() == 1.0);
  CHECK(tape.scalar_op(zero.index()) == tg::ScalarOp::constant);
  tg::Scalar x = tg::var(2.0);
  const tg::Scalar& m = std::max(x, zero);  // std::max on two values: a recorded comparison
  CHECK(m.value() == 2.0);
  CHECK(tape.compares().size() == 1);
  tg::Scalar y = +x;  // unary plus: the same node
  CHECK(y.index() == x.index());
}
