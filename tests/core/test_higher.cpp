// Forward mode, Jacobians, Hessian-vector products and Hessians: exact worked
// cases, every scalar and tensor op against finite differences (value and
// gradient), forward against reverse mode, symmetry, the kink policy, and
// clear errors for what cannot be differentiated twice.
#include <tapegrad/registry.hpp>

#include <cmath>
#include <random>

#include "helpers.hpp"

namespace {

std::vector<double> fd_hessian(const std::function<double(const std::vector<double>&)>& f,
                               std::vector<double> x, double h = 1e-4) {
  const std::size_t n = x.size();
  std::vector<double> H(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      auto at = [&](double di, double dj) {
        std::vector<double> y = x;
        y[i] += di, y[j] += dj;
        return f(y);
      };
      H[i * n + j] = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h);
    }
  return H;
}

// Every scalar op, numbers on both sides (as in the replay tests).
template <class S>
S all_ops(const S& x, const S& y, const S& z) {
  using tg::abs, tg::exp, tg::log, tg::max, tg::min, tg::pow, tg::relu, tg::sigmoid, tg::sqrt,
      tg::tanh;
  S a = x * y + 2.0 * z - y / 3.0;
  S b = 1.5 - tanh(a) + sigmoid(z) * exp(x / 4.0);
  S c = pow(abs(b) + 0.5, 1.7) + pow(1.3, y) + pow(abs(x) + 1.0, z);
  S d = max(c, x) + min(0.2, y) + relu(z - 0.1) + max(2.0, b);
  S e = log(sqrt(d * d + 1.0)) - (-x) / (y * y + 1.0) + 4.0 / (z * z + 2.0);
  return e * x + min(e, y - 1.0) + (2.0 - e) * 0.25 + x * y * z;
}

}  // namespace

TEST_CASE("the Hessian of Rosenbrock at (1.5, 2) is [[1902, -600], [-600, 200]]", "[higher]") {
  tg::Tape tape;
  tg::Scalar x = tape.variable(1.5), y = tape.variable(2);
  tg::Scalar f = tg::pow(1.0 - x, 2.0) + 100.0 * tg::pow(y - x * x, 2.0);
  const std::vector<double> H = tg::hessian(f, {x, y});
  CHECK(H[0] == Approx(1902).epsilon(1e-14));
  CHECK(H[1] == Approx(-600).epsilon(1e-14));
  CHECK(H[2] == Approx(-600).epsilon(1e-14));
  CHECK(H[3] == Approx(200).epsilon(1e-14));
  // The tape keeps the first-order gradient: df/dx = -2(1-x) - 400 x (y - x^2) = 151, df/dy = -50.
  CHECK(x.grad() == Approx(151));
  CHECK(y.grad() == Approx(-50));
  // H v and the directional derivative along v = (1, 0).
  const std::vector<double> Hv = tg::hvp(f, {x, y}, std::vector<double>{1, 0});
  CHECK(Hv[0] == Approx(1902));
  CHECK(Hv[1] == Approx(-600));
  CHECK(tg::jvp({f}, {x, y}, std::vector<double>{1, 0})[0] == Approx(151));
}

TEST_CASE("every scalar op: Hessian against finite differences of the value", "[higher]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<double> x0{u(rng), u(rng), u(rng)};
    for (double& v : x0)  // keep the finite differences off the kink of abs(x)
      if (std::abs(v) < 0.1) v += v < 0 ? -0.1 : 0.1;
    tg::Tape tape;
    tg::Scalar x = tape.variable(x0[0]), y = tape.variable(x0[1]), z = tape.variable(x0[2]);
    tg::Scalar f = all_ops(x, y, z);
    const std::vector<double> H = tg::hessian(f, {x, y, z});
    const auto value = [](const std::vector<double>& p) {
      tg::Tape t;
      return all_ops(t.variable(p[0]), t.variable(p[1]), t.variable(p[2])).value();
    };
    const std::vector<double> want = fd_hessian(value, x0);
    INFO("trial " << trial << " at " << x0[0] << ", " << x0[1] << ", " << x0[2]);
    for (std::size_t i = 0; i < 9; ++i) CHECK(H[i] == Approx(want[i]).margin(2e-4).epsilon(1e-4));
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < i; ++j)
        CHECK(H[i * 3 + j] == Approx(H[j * 3 + i]).epsilon(1e-12).margin(1e-12));
  }
}

TEST_CASE("every scalar op: forward and reverse mode agree, JVP against differences", "[higher]") {
  const auto f = [](std::span<const tg::Scalar> s) { return all_ops(s[0], s[1], s[2]); };
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    tg::GradcheckOptions opt;
    opt.seed = seed;
    opt.directions = 4;
    const tg::GradcheckResult r = tg::gradcheck_order2(f, sample(3, seed, -1.5, 1.5, 0.1), opt);
    INFO(r.str());
    CHECK(r.pass);
  }
}

TEST_CASE("every registered tensor op passes the second-order check", "[higher]") {
  std::uint64_t seed = 100;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) {
    std::vector<tg::GradcheckInput> in;
    for (const tg::Shape& s : c.shapes) in.push_back(input(s, seed++, c.lo, c.hi, c.gap));
    tg::GradcheckOptions opt;
    opt.directions = 3;
    const tg::GradcheckResult r = tg::gradcheck_order2(c.fn, in, opt);
    INFO(c.op << "\n" << r.str());
    CHECK(r.pass);
  }
}

TEST_CASE("Jacobians: reverse, forward and automatic give the same matrix", "[higher]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor w = tg::tensor({{0.3, -0.2, 0.5}, {0.1, 0.4, -0.6}}, {.requires_grad = true});
  tg::Scalar s = tape.variable(0.7);
  tg::Tensor x = tg::tensor({0.2, -0.1, 0.9}, {3, 1}, {.requires_grad = true});
  tg::Tensor y = tg::tanh(s * tg::matmul(w, x));  // (2, 1)
  tg::Scalar r = s * s;
  const std::vector<tg::Ref> outs{y, r}, ins{w, s, x};
  const auto J1 = tg::jacobian(outs, ins, tg::JacobianMode::reverse);
  const auto J2 = tg::jacobian(outs, ins, tg::JacobianMode::forward);
  const auto J3 = tg::jacobian(outs, ins);
  REQUIRE(J1.size() == 3 * 10);
  require_close(J1, J2, 1e-13);
  require_close(J1, J3, 1e-13);
  // Row 2 (r = s^2): only ds = 2s.
  for (std::size_t k = 0; k < 10; ++k) CHECK(J1[20 + k] == (k == 6 ? Approx(1.4) : Approx(0)));
  // dy0/dw00 = (1 - y0^2) s x0.
  const double y0 = y.values()[0];
  CHECK(J1[0] == Approx((1 - y0 * y0) * 0.7 * 0.2));
}

TEST_CASE("the 2-2-2 network of the notes: second derivatives against differences", "[higher]") {
  // The notes' network: inputs 0.05, 0.10; targets 0.01, 0.99; sigmoid
  // layers; E = sum (t - o)^2 / 2. The Hessian over all 8 weights.
  const std::vector<double> w0{0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55};
  const auto error = [](auto& w) {
    using S = std::decay_t<decltype(w[0])>;
    const double i1 = 0.05, i2 = 0.10, b1 = 0.35, b2 = 0.60;
    S h1 = tg::sigmoid(w[0] * i1 + w[1] * i2 + b1), h2 = tg::sigmoid(w[2] * i1 + w[3] * i2 + b1);
    S o1 = tg::sigmoid(w[4] * h1 + w[5] * h2 + b2), o2 = tg::sigmoid(w[6] * h1 + w[7] * h2 + b2);
    return 0.5 * tg::pow(0.01 - o1, 2.0) + 0.5 * tg::pow(0.99 - o2, 2.0);
  };
  tg::Tape tape;
  std::vector<tg::Scalar> w;
  for (double v : w0) w.push_back(tape.variable(v));
  tg::Scalar E = error(w);
  CHECK(E.value() == Approx(0.298371109));  // the notes' total error
  const std::vector<double> H = tg::hessian(E, std::vector<tg::Ref>(w.begin(), w.end()));
  const auto value = [&](const std::vector<double>& p) {
    tg::Tape t;
    std::vector<tg::Scalar> ws;
    for (double v : p) ws.push_back(t.variable(v));
    return error(ws).value();
  };
  const std::vector<double> want = fd_hessian(value, w0);
  for (std::size_t i = 0; i < 64; ++i) CHECK(H[i] == Approx(want[i]).margin(1e-7));
  // d2E/dw5^2 = (o1 (1 - o1) h1)^2 (1 - 2(o1 - t1)(2 o1 - 1)/(1)) ... checked in closed form:
  const double h1 = 1 / (1 + std::exp(-(0.15 * 0.05 + 0.20 * 0.10 + 0.35)));
  const double h2 = 1 / (1 + std::exp(-(0.25 * 0.05 + 0.30 * 0.10 + 0.35)));
  const double o1 = 1 / (1 + std::exp(-(0.40 * h1 + 0.45 * h2 + 0.60)));
  const double s1 = o1 * (1 - o1), ds1 = s1 * (1 - 2 * o1);
  // E1 = (t - o1)^2 / 2: d2E/dz^2 = s1^2 + (o1 - t) ds1, and dz/dw5 = h1.
  CHECK(H[4 * 8 + 4] == Approx((s1 * s1 + (o1 - 0.01) * ds1) * h1 * h1).epsilon(1e-12));
}

TEST_CASE("kinks: relu, abs, max and min have zero curvature, also at the tie", "[higher]") {
  for (double at : {-0.5, 0.0, 0.5}) {
    tg::Tape tape;
    tg::Scalar x = tape.variable(at), y = tape.variable(0.0);
    tg::Scalar f = tg::relu(x) + tg::abs(x) + tg::max(x, y) + tg::min(x, y) + 3.0 * x;
    const std::vector<double> H = tg::hessian(f, {x, y});
    for (double h : H) CHECK(h == 0.0);
  }
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({-1.0, 0.0, 2.0}, {.requires_grad = true});
  tg::Tensor f = tg::sum(tg::relu(x) + tg::abs(x) + tg::leaky_relu(x, 0.1));
  for (double h : tg::hessian(f, {x})) CHECK(h == 0.0);
}

TEST_CASE("an MLP loss: HVP against differences of the gradient, float64", "[higher]") {
  const std::int32_t labels[] = {1, 0, 2, 1};
  const auto f = [&](std::span<const tg::Tensor> p) {
    tg::Tensor x = tg::tensor(sample(4 * 3, 11), {4, 3});  // data: a constant
    tg::Tensor h = tg::relu(tg::linear(x, p[0], p[1]));
    return tg::softmax_cross_entropy(tg::linear(h, p[2], p[3]), labels);
  };
  tg::GradcheckOptions opt;
  opt.directions = 4;
  const tg::GradcheckResult r = tg::gradcheck_order2(
      f, {input({5, 3}, 1), input({5}, 2), input({3, 5}, 3), input({3}, 4)}, opt);
  INFO(r.str());
  CHECK(r.pass);
}

TEST_CASE("higher-order errors name what is wrong", "[higher]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tape.variable(2), y = tape.variable(3);
  tg::Scalar f = x * y;
  CHECK_THROWS_WITH(tg::hvp(f, {x, y}, std::vector<double>{1}),
                    Catch::Contains("v has 1 elements") && Catch::Contains("hold 2"));
  CHECK_THROWS_WITH(tg::hessian(f, {x, f}),
                    Catch::Contains("input 1") && Catch::Contains("not a variable"));
  tg::Tensor t = tg::tensor({1.0, 2.0}, {.requires_grad = true});
  CHECK_THROWS_WITH(tg::hessian(t * 2.0, {t}),
                    Catch::Contains("2 elements") && Catch::Contains("one-element output"));
  // A custom op without a JVP rule is named, not silently first-order.
  static const tg::TensorOpDef twice{
      .name = "twice",
      .forward =
          [](tg::Tape& tp, std::uint32_t n) {
            const tg::TensorNode& node = tp.tensor_node(n);
            for (std::int64_t i = 0; i < node.shape.numel(); ++i)
              static_cast<double*>(tp.tensor_node(n).value)[i] =
                  2 * static_cast<const double*>(tp.tensor_node(node.in[0]).value)[i];
          },
      .backward =
          [](tg::Tape& tp, std::uint32_t n) {
            const tg::TensorNode& node = tp.tensor_node(n);
            auto* g = static_cast<double*>(tp.grad_buffer(node.in[0]));
            for (std::int64_t i = 0; i < node.shape.numel(); ++i)
              g[i] += 2 * static_cast<const double*>(node.grad)[i];
          }};
  tg::Tensor u = tg::sum(tg::record_op(twice, {t}, t.shape()));
  CHECK_THROWS_WITH(tg::hessian(u, {t}),
                    Catch::Contains("'twice'") && Catch::Contains("no JVP rule"));
  // The tape's gradients survive a failed second-order sweep.
  CHECK(t.grads() == std::vector<double>{2, 2});
}

namespace {
// y = x^3 with a correct JVP; the curvature rule is chosen by the test.
void cube_forward(tg::Tape& tp, std::uint32_t n) {
  const tg::TensorNode& node = tp.tensor_node(n);
  const auto* x = static_cast<const double*>(tp.tensor_node(node.in[0]).value);
  for (std::int64_t i = 0; i < node.shape.numel(); ++i)
    static_cast<double*>(node.value)[i] = x[i] * x[i] * x[i];
}
void cube_backward(tg::Tape& tp, std::uint32_t n) {
  const tg::TensorNode& node = tp.tensor_node(n);
  const auto* x = static_cast<const double*>(tp.tensor_node(node.in[0]).value);
  const auto* g = static_cast<const double*>(node.grad);
  auto* gx = static_cast<double*>(tp.grad_buffer(node.in[0]));
  for (std::int64_t i = 0; i < node.shape.numel(); ++i) gx[i] += g[i] * 3 * x[i] * x[i];
}
void cube_jvp(tg::Tape& tp, std::uint32_t n, tg::Tangents& tg) {
  const tg::TensorNode& node = tp.tensor_node(n);
  const auto* x = static_cast<const double*>(tp.tensor_node(node.in[0]).value);
  const double* tx = tg.of<double>(node.in[0]);
  double* ty = tg.out<double>(n);
  for (std::int64_t i = 0; i < node.shape.numel(); ++i) ty[i] = 3 * x[i] * x[i] * tx[i];
}
template <int Factor>  // d2(x^3) = 6x: Factor 6 is right, 3 is the classic slip
void cube_curvature(tg::Tape& tp, std::uint32_t n, tg::Tangents& tg) {
  const tg::TensorNode& node = tp.tensor_node(n);
  const auto* x = static_cast<const double*>(tp.tensor_node(node.in[0]).value);
  const double* g = tg.first_grad<double>(n);
  const double* tx = tg.of<double>(node.in[0]);
  auto* hx = static_cast<double*>(tp.grad_buffer(node.in[0]));
  for (std::int64_t i = 0; i < node.shape.numel(); ++i) hx[i] += g[i] * Factor * x[i] * tx[i];
}
}  // namespace

TEST_CASE("a deliberately wrong second-order rule is caught and named", "[higher]") {
  static const tg::TensorOpDef right{.name = "cube",
                                     .forward = &cube_forward,
                                     .backward = &cube_backward,
                                     .jvp = &cube_jvp,
                                     .curvature = &cube_curvature<6>};
  static const tg::TensorOpDef wrong{.name = "cube",
                                     .forward = &cube_forward,
                                     .backward = &cube_backward,
                                     .jvp = &cube_jvp,
                                     .curvature = &cube_curvature<3>};
  for (const tg::TensorOpDef* def : {&right, &wrong}) {
    const auto f = [def](std::span<const tg::Tensor> x) {
      return tg::record_op(*def, {x[0]}, x[0].shape());
    };
    const tg::GradcheckResult r = tg::gradcheck_order2(f, {input({4}, 5)});
    INFO(r.str());
    REQUIRE(r.inputs.size() == 3);
    CHECK(r.inputs[0].name == "jvp");
    CHECK(r.inputs[0].pass);
    CHECK(r.inputs[1].name == "hvp");
    CHECK(r.inputs[1].pass == (def == &right));
    CHECK(r.inputs[2].pass);
    CHECK(r.pass == (def == &right));
  }
}

TEST_CASE("Function: Newton's method on Rosenbrock by replayed Hessians", "[higher]") {
  std::vector<double> x{-1.2, 1.0};
  tg::Function fn = tg::Function::record(x, [](std::span<const tg::Scalar> v) {
    return tg::pow(1.0 - v[0], 2.0) + 100.0 * tg::pow(v[1] - v[0] * v[0], 2.0);
  });
  double H[4], g[2];
  int steps = 0;
  for (; steps < 20; ++steps) {
    fn.hessian(x, H, g);
    if (std::hypot(g[0], g[1]) < 1e-10) break;
    const double det = H[0] * H[3] - H[1] * H[2];  // x -= H^-1 g
    x[0] -= (H[3] * g[0] - H[1] * g[1]) / det;
    x[1] -= (H[0] * g[1] - H[2] * g[0]) / det;
  }
  CHECK(steps < 10);
  CHECK(x[0] == Approx(1).epsilon(1e-12));
  CHECK(x[1] == Approx(1).epsilon(1e-12));
  double hv[2], d = 0;
  const double v = fn.hvp(std::vector<double>{1.5, 2}, std::vector<double>{0, 1}, hv);
  CHECK(v == Approx(6.5));
  CHECK(hv[0] == Approx(-600));
  CHECK(hv[1] == Approx(200));
  fn.jvp(std::vector<double>{1.5, 2}, std::vector<double>{0, 1}, &d);
  CHECK(d == Approx(-50));
  CHECK_THROWS_WITH(fn.hessian(x, std::span<double>(H, 3)),
                    Catch::Contains("room for 3 entries in H, which needs 4"));
}
