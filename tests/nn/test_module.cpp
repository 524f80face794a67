// The nn module against the reference's worked examples, the Scalar engine,
// and finite differences.
#include <tapegrad/nn.hpp>

#include <limits>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {
constexpr double k6 = 5e-7;

constexpr nn::MLPOptions kSigmoid64{
    .hidden = nn::Activation::sigmoid, .output = nn::Activation::sigmoid, .dtype = tg::DType::f64};
void set_example3(nn::MLP& m) {
  m.layer(0).weight().set_values(std::vector<double>{0.15, 0.20, 0.25, 0.30});
  m.layer(0).bias()->set_values(std::vector<double>{0.35, 0.35});
  m.layer(1).weight().set_values(std::vector<double>{0.40, 0.45, 0.50, 0.55});
  m.layer(1).bias()->set_values(std::vector<double>{0.60, 0.60});
}
}  // namespace

TEST_CASE("example 3 through the nn module: loss and every gradient", "[nn][worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  nn::MLP m({2, 2, 2}, kSigmoid64);
  set_example3(m);
  tg::Tensor x = tg::tensor({{0.05, 0.10}});  // one sample per row
  tg::Tensor r = tg::tensor({{0.01, 0.99}});
  tg::Tensor E = nn::half_squared_error(m(x), r);
  E.backward();
  CHECK(E.value(0) == Approx(0.298371).margin(k6));
  require_close(m.layer(1).weight().grads(), {0.082167, 0.082668, -0.022603, -0.022740}, k6);
  require_close(m.layer(1).bias()->grads(), {0.138499, -0.038098}, k6);
  require_close(m.layer(0).weight().grads(), {0.000439, 0.000877, 0.000498, 0.000995}, k6);
  require_close(m.layer(0).bias()->grads(), {0.008771, 0.009954}, k6);
}

TEST_CASE("example 4 through the nn module: gradients and one SGD step", "[nn][worked]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  nn::MLP m({2, 2, 1}, {.hidden = nn::Activation::sigmoid,
                        .output = nn::Activation::sigmoid,
                        .dtype = tg::DType::f64,
                        .bias = false});
  // Row i of a weight matrix feeds node i: hidden a = (w1, w3), b = (w2, w4).
  m.layer(0).weight().set_values(std::vector<double>{0.1, 0.4, 0.5, 0.3});
  m.layer(1).weight().set_values(std::vector<double>{0.2, 0.6});
  CHECK(m.parameters().size() == 2);
  nn::SGD sgd(m.parameters(), {.lr = 0.7});
  tg::Tensor E = nn::half_squared_error(m(tg::tensor({{0.23, 0.82}})), tg::tensor({1.0}, {1, 1}));
  sgd.zero_grad();
  E.backward();
  CHECK(E.value(0) == Approx(0.073879).margin(k6));
  const auto g1 = m.layer(0).weight().grads(), g2 = m.layer(1).weight().grads();
  require_close({g1[0], g1[2], g1[1], g1[3], g2[0], g2[1]},
                {-0.001014, -0.003038, -0.003617, -0.010831, -0.053381, -0.053602}, k6);
  sgd.step();
  const auto w1 = m.layer(0).weight().values(), w2 = m.layer(1).weight().values();
  require_close({w1[0], w1[2], w1[1], w1[3], w2[0], w2[1]},
                {0.100710, 0.502127, 0.402532, 0.307582, 0.237367, 0.637521}, k6);
}

TEST_CASE("the Scalar engine and the vectorised MLP give identical gradients, layer by layer",
          "[nn][scalar]") {
  nn::MLP m({3, 4, 2}, {.hidden = nn::Activation::tanh,
                        .output = nn::Activation::sigmoid,
                        .dtype = tg::DType::f64,
                        .seed = 5});
  const std::vector<std::vector<double>> xs{{0.5, -1.0, 0.25}, {-0.3, 0.8, 1.5}};
  const std::vector<std::vector<double>> rs{{0.1, 0.9}, {0.7, 0.2}};
  // Vectorised: both samples as a batch.
  tg::Tape vt;
  {
    tg::TapeScope s(vt);
    tg::Tensor E = nn::half_squared_error(
        m(tg::tensor({xs[0][0], xs[0][1], xs[0][2], xs[1][0], xs[1][1], xs[1][2]}, {2, 3})),
        tg::tensor({rs[0][0], rs[0][1], rs[1][0], rs[1][1]}, {2, 2}));
    m.zero_grad();
    E.backward();
  }
  // Scalar: the same network neuron by neuron.
  tg::Tape st;
  tg::TapeScope s(st);
  std::vector<std::vector<tg::Scalar>> W(2), B(2);
  for (std::size_t l = 0; l < 2; ++l) {
    for (double v : m.layer(l).weight().values()) W[l].push_back(tg::var(v));
    for (double v : m.layer(l).bias()->values()) B[l].push_back(tg::var(v));
  }
  tg::Scalar E = tg::constant(0);
  for (std::size_t n = 0; n < 2; ++n) {
    std::vector<tg::Scalar> h;
    for (double v : xs[n]) h.push_back(tg::constant(v));
    for (std::size_t l = 0; l < 2; ++l) {
      const std::size_t in = h.size(), out = B[l].size();
      std::vector<tg::Scalar> next;
      for (std::size_t o = 0; o < out; ++o) {
        tg::Scalar z = B[l][o];
        for (std::size_t i = 0; i < in; ++i) z = z + W[l][o * in + i] * h[i];
        next.push_back(l == 0 ? tg::tanh(z) : tg::sigmoid(z));
      }
      h = next;
    }
    for (std::size_t o = 0; o < 2; ++o) {
      tg::Scalar d = h[o] - rs[n][o];
      E = E + 0.5 * d * d;
    }
  }
  E.backward();
  for (std::size_t l = 0; l < 2; ++l) {
    INFO("layer " << l);
    std::vector<double> gw, gb;
    for (auto& w : W[l]) gw.push_back(w.grad());
    for (auto& b : B[l]) gb.push_back(b.grad());
    require_close(m.layer(l).weight().grads(), gw, 1e-14);
    require_close(m.layer(l).bias()->grads(), gb, 1e-14);
  }
}

TEST_CASE("MLP parameter gradients agree with finite differences", "[nn][gradcheck]") {
  nn::MLP m({3, 5, 4}, {.hidden = nn::Activation::leaky_relu, .dtype = tg::DType::f64, .seed = 9});
  const std::vector<std::int32_t> labels{1, 3};
  const std::vector<double> xv = sample(6, 11, -1, 1);
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const auto loss = [&] {
    tape.clear();
    return nn::cross_entropy(m(tg::tensor(xv, {2, 3})), labels);
  };
  m.zero_grad();
  loss().backward();
  for (auto& [name, p] : m.named_parameters()) {
    const auto analytic = p->grads();
    const auto numeric = param_central_differences(*p, [&] { return loss().value(0); });
    for (std::size_t k = 0; k < numeric.size(); ++k) {
      INFO(name << "[" << k << "]: analytic " << analytic[k] << ", numeric " << numeric[k]);
      REQUIRE(std::abs(analytic[k] - numeric[k]) <= 1e-5 + 1e-3 * std::abs(numeric[k]));
    }
  }
  CHECK(m.parameter_count() == 3 * 5 + 5 + 5 * 4 + 4);
  const auto names = m.named_parameters();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "layer0.weight");
  CHECK(names[3].first == "layer1.bias");
}

TEST_CASE("SGD with momentum and Adam follow their update rules", "[nn][optim]") {
  nn::Linear lin("l", 1, 1, tg::DType::f64, 0, nn::Init::xavier_uniform, false);
  lin.weight().set_values(std::vector<double>{1.0});
  nn::SGD sgd({&lin.weight()}, {.lr = 0.1, .momentum = 0.9});
  for (int i = 0; i < 2; ++i) {
    lin.weight().grad<double>()[0] = 2.0;
    sgd.step();
  }
  // v1 = 2, w1 = 0.8; v2 = 0.9*2 + 2 = 3.8, w2 = 0.8 - 0.38 = 0.42
  CHECK(lin.weight().values()[0] == Approx(0.42).epsilon(1e-14));

  lin.weight().set_values(std::vector<double>{1.0});
  nn::Adam adam({&lin.weight()}, {.lr = 0.01});
  lin.weight().grad<double>()[0] = -3.0;
  adam.step();  // the first Adam step moves by lr * sign(g) (up to eps)
  CHECK(lin.weight().values()[0] == Approx(1.01).epsilon(1e-9));
  CHECK(adam.steps() == 1);
  REQUIRE_THROWS_WITH(nn::SGD({&lin.weight()}, {.lr = -1}),
                      Catch::Contains("learning rate must be a positive"));
}

TEST_CASE("an MLP learns two moons with Adam", "[nn][train]") {
  auto data = nn::make_moons(400, 3);
  nn::MLP m({2, 16, 16, 2}, {.seed = 2});
  nn::Adam adam(m.parameters(), {.lr = 0.02});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  train_epochs(m, adam, data, 32, 4, 60);
  tg::Tensor logits = m(tg::external({data.n, 2}, tg::DType::f32, data.x.data(), nullptr));
  const auto z = logits.values();
  int correct = 0;
  for (std::int64_t i = 0; i < data.n; ++i)
    correct += (z[static_cast<std::size_t>(2 * i + 1)] > z[static_cast<std::size_t>(2 * i)]) ==
               (data.y[static_cast<std::size_t>(i)] == 1);
  CHECK(correct >= 0.97 * static_cast<double>(data.n));
}

namespace {
// Gradients of every parameter after one backward of a cross-entropy loss on
// `rows` samples, starting from gradient memory filled with NaN and then
// zeroed lazily (so any rule that read it instead of overwriting shows).
template <class T>
std::vector<std::vector<double>> grads_from_garbage(nn::MLP& m, std::int64_t rows, int passes) {
  const std::vector<double> xv = sample(rows * 3, 21, -1, 1);
  std::vector<std::int32_t> labels;
  for (std::int64_t r = 0; r < rows; ++r) labels.push_back(static_cast<std::int32_t>(r % 4));
  for (nn::Parameter* p : m.parameters())
    for (T& g : p->grad<T>()) g = std::numeric_limits<T>::quiet_NaN();
  m.zero_grad();
  tg::Tape tape;
  tg::TapeScope scope(tape);
  for (int k = 0; k < passes; ++k) {
    tape.clear();
    tg::Tensor x = tg::tensor(xv, {rows, 3}, {.dtype = m.options().dtype});
    tg::Tensor logits = m(x);
    // (cross-entropy refuses an empty batch; the sum of no logits is 0)
    (rows ? nn::cross_entropy(logits, labels) : tg::sum(logits)).backward();
  }
  std::vector<std::vector<double>> out;
  for (nn::Parameter* p : m.parameters()) out.push_back(p->grads());
  return out;
}
}  // namespace

TEST_CASE("zero_grad is lazy: backward overwrites stale gradient memory, later passes add",
          "[nn][optim]") {
  for (const tg::DType dt : {tg::DType::f64, tg::DType::f32}) {
    // rows = 1 takes the outer-product path, 0 the empty one, 5 the GEMM.
    for (const std::int64_t rows : {1, 0, 5}) {
      INFO("dtype " << tg::dtype_name(dt) << ", rows " << rows);
      nn::MLP a({3, 6, 4}, {.dtype = dt, .seed = 2}), b({3, 6, 4}, {.dtype = dt, .seed = 2});
      const auto once = dt == tg::DType::f64 ? grads_from_garbage<double>(a, rows, 1)
                                             : grads_from_garbage<float>(a, rows, 1);
      const auto twice = dt == tg::DType::f64 ? grads_from_garbage<double>(b, rows, 2)
                                              : grads_from_garbage<float>(b, rows, 2);
      const double tol = dt == tg::DType::f64 ? 1e-14 : 1e-6;
      for (std::size_t p = 0; p < once.size(); ++p)
        for (std::size_t k = 0; k < once[p].size(); ++k) {
          REQUIRE(std::isfinite(once[p][k]));
          if (rows == 0) REQUIRE(once[p][k] == 0.0);
          REQUIRE(std::abs(twice[p][k] - 2 * once[p][k]) <= tol * (1 + std::abs(once[p][k])));
        }
    }
  }
  // The result equals that of an eagerly zeroed start (f64, checked above
  // against finite differences in "MLP parameter gradients ...").
  nn::MLP m({3, 6, 4}, {.dtype = tg::DType::f64, .seed = 2});
  const auto lazy = grads_from_garbage<double>(m, 5, 1);
  for (nn::Parameter* p : m.parameters()) {
    const auto g = p->grad<double>();
    std::fill(g.begin(), g.end(), 0.0);
  }
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const std::vector<double> xv = sample(15, 21, -1, 1);
  nn::cross_entropy(m(tg::tensor(xv, {5, 3})), std::vector<std::int32_t>{0, 1, 2, 3, 0}).backward();
  std::size_t i = 0;
  for (nn::Parameter* p : m.parameters()) require_close(p->grads(), lazy[i++], 1e-14);
}

TEST_CASE("a lazily zeroed parameter reads as zero until a gradient reaches it", "[nn][optim]") {
  nn::Parameter p("w", {1, 3}, tg::DType::f64);
  for (double& g : p.grad<double>()) g = 7;
  p.zero_grad();
  CHECK(p.grads() == std::vector<double>{0, 0, 0});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor w = p.var(tape), w2 = p.var(tape);
  CHECK(w.grads() == std::vector<double>{0, 0, 0});
  // On the tape twice: the rule that writes second adds to the first's
  // gradient instead of overwriting it.
  tg::Tensor y =
      tg::sum(tg::linear(tg::tensor({{1.0, 2.0, 3.0}}), w, tg::Tensor())) + tg::sum(w2 * 2.0);
  y.backward();
  CHECK(p.grads() == std::vector<double>{3, 4, 5});
  // The tape's own zero_grad zeroes it lazily too; an unreached parameter
  // reads as zero through every accessor, even after stale values.
  tape.zero_grad();
  CHECK(w.grads() == std::vector<double>{0, 0, 0});
  CHECK(p.grads() == std::vector<double>{0, 0, 0});
  for (double g : p.grad<double>()) CHECK(g == 0.0);
  y.backward();
  CHECK(p.grads() == std::vector<double>{3, 4, 5});
}

TEST_CASE("matmul overwrites a lazily zeroed gradient once and adds over batches", "[nn][optim]") {
  // {A shape, B shape, whether the parameter is A}: 2-D, batched A with a
  // shared B (one product), a shared A over batched B (one product per batch,
  // adding into A's gradient), both batched, and empty batches.
  struct Case {
    tg::Shape a, b;
    bool param_is_a;
  };
  const std::vector<Case> cases{{{3, 4}, {4, 2}, false},    {{2, 3, 4}, {4, 2}, false},
                                {{3, 4}, {2, 4, 2}, true},  {{2, 3, 4}, {2, 4, 2}, true},
                                {{0, 3, 4}, {4, 2}, false}, {{3, 4}, {0, 4, 2}, true}};
  for (const Case& c : cases) {
    INFO("A " << c.a.str() << ", B " << c.b.str() << (c.param_is_a ? ", A" : ", B")
              << " is the parameter");
    const tg::Shape ps = c.param_is_a ? c.a : c.b, os = c.param_is_a ? c.b : c.a;
    nn::Parameter p("p", ps, tg::DType::f64);
    p.set_values(sample(ps.numel(), 5));
    const std::vector<double> other = sample(os.numel(), 6);
    tg::Tape tape;
    tg::TapeScope scope(tape);
    const auto loss = [&] {
      tape.clear();
      tg::Tensor w = p.var(tape), x = tg::tensor(other, os);
      return tg::sum(tg::tanh(c.param_is_a ? tg::matmul(w, x) : tg::matmul(x, w)));
    };
    for (double& g : p.grad<double>()) g = std::numeric_limits<double>::quiet_NaN();
    p.zero_grad();
    loss().backward();
    const std::vector<double> analytic = p.grads();
    auto v = p.values();
    for (std::size_t k = 0; k < v.size(); ++k) {
      const double keep = v[k], eps = 1e-6;
      v[k] = keep + eps, p.set_values(v);
      const double fp = loss().value(0);
      v[k] = keep - eps, p.set_values(v);
      const double fm = loss().value(0);
      v[k] = keep, p.set_values(v);
      const double numeric = (fp - fm) / (2 * eps);
      INFO("element " << k << ": analytic " << analytic[k] << ", numeric " << numeric);
      REQUIRE(std::abs(analytic[k] - numeric) <= 1e-5 + 1e-3 * std::abs(numeric));
    }
    if (ps.numel() > 0 && os.numel() == 0) CHECK(analytic == std::vector<double>(v.size(), 0.0));
  }
}
