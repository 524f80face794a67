// The weight gradient of a batch of one row is an outer product; backward
// keeps its two factors in the parameter instead of writing the product
// (PendingGrad), optimisers read the factors, and every other reader sees
// the written product. These tests hold the result to the dense path: exact
// worked values, finite differences, and bit-for-bit equal training.
#include <tapegrad/nn.hpp>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {
// y = x W^T + b for x = (1.5, -2, 0.5); loss = sum(y * c) with c = (2, -3):
// dW[r][k] = c[r] x[k], exactly representable.
const std::vector<double> kX{1.5, -2, 0.5}, kC{2, -3};
const std::vector<double> kDW{3, -4, 1, -4.5, 6, -1.5};

tg::Tensor row(const std::vector<double>& v, tg::DType dtype = tg::DType::f64) {
  return tg::tensor(v, {1, static_cast<std::int64_t>(v.size())}, {.dtype = dtype});
}
}  // namespace

TEST_CASE("a batch of one keeps the weight gradient as factors", "[nn][grad][outer]") {
  for (tg::DType dtype : {tg::DType::f64, tg::DType::f32}) {
    CAPTURE(std::string(tg::dtype_name(dtype)));
    nn::Parameter w("w", tg::Shape{2, 3}, dtype), b("b", tg::Shape{2}, dtype);
    w.set_values(std::vector<double>{0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
    w.zero_grad(), b.zero_grad();
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::Tensor wt = w.var(tape);
    tg::sum(tg::linear(row(kX, dtype), wt, b.var(tape)) * row(kC, dtype)).backward();
    const tg::PendingGrad* f = w.grad_factors();
    REQUIRE(f != nullptr);  // kept as factors: rows + cols values
    CHECK(f->rows == 2);
    CHECK(f->cols == 3);
    CHECK(b.grad_factors() == nullptr);  // a bias gradient is no outer product
    // Every reader sees the product: the tape's tensor, then the parameter.
    CHECK(wt.grads() == kDW);
    CHECK(w.grad_factors() == nullptr);  // written out by that read
    CHECK(w.grads() == kDW);
    CHECK(b.grads() == kC);
  }
}

TEST_CASE("factors from matmul, and when the product is written instead", "[nn][grad][outer]") {
  // C = X W for X (1, 3), W (3, 2); loss = sum(C * c): dW[k][r] = x[k] c[r].
  nn::Parameter w("w", tg::Shape{3, 2}, tg::DType::f64);
  w.set_values(std::vector<double>{1, 2, 3, 4, 5, 6});
  const std::vector<double> want{3, -4.5, -4, 6, 1, -1.5};
  tg::Tape tape;
  tg::TapeScope scope(tape);
  w.zero_grad();
  tg::sum(tg::matmul(row(kX), w.var(tape)) * row(kC)).backward();
  REQUIRE(w.grad_factors() != nullptr);
  CHECK(w.grads() == want);
  std::vector<double> twice = want;
  for (double& v : twice) v *= 2;

  SECTION("two rows: a written product") {
    tape.clear();
    w.zero_grad();
    tg::Tensor x = tg::tensor({{1.5, -2, 0.5}, {1.5, -2, 0.5}});
    tg::sum(tg::matmul(x, w.var(tape)) * row(kC)).backward();
    CHECK(w.grad_factors() == nullptr);
    CHECK(w.grads() == twice);
  }
  SECTION("a gradient not zeroed: the product adds to it") {
    tape.clear();
    tg::sum(tg::matmul(row(kX), w.var(tape)) * row(kC)).backward();
    CHECK(w.grad_factors() == nullptr);
    CHECK(w.grads() == twice);
  }
  SECTION("a parameter used twice: the second use adds to the first's factors") {
    tape.clear();
    w.zero_grad();
    tg::Tensor y = tg::matmul(row(kX), w.var(tape)) + tg::matmul(row({1, 1, 1}), w.var(tape));
    tg::sum(y * row(kC)).backward();
    CHECK(w.grad_factors() == nullptr);
    CHECK(w.grads() == std::vector<double>{5, -7.5, -2, 3, 3, -4.5});
  }
  SECTION("zeroed after factors: reads as zero, and a dense gradient overwrites") {
    w.zero_grad();
    CHECK(w.grad_factors() == nullptr);
    CHECK(w.grads() == std::vector<double>(6, 0.0));
    tape.clear();
    tg::Tensor x = tg::tensor({{1.0, 0, 0}, {0, 1.0, 0}});
    tg::sum(tg::matmul(x, w.var(tape))).backward();
    CHECK(w.grads() == std::vector<double>{1, 1, 1, 1, 0, 0});
  }
}

TEST_CASE("gradients kept as factors match finite differences", "[nn][grad][outer]") {
  nn::MLP m({4, 5, 3}, {.dtype = tg::DType::f64, .seed = 11});
  const std::vector<double> x = sample(4, 3, -1, 1);
  const std::vector<std::int32_t> label{1};
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const auto loss = [&] {
    tape.clear();
    return nn::cross_entropy(m(row(x)), label);
  };
  m.zero_grad();
  loss().backward();
  for (nn::Parameter* p : m.parameters()) {
    CAPTURE(p->name());
    const bool weight = p->shape().rank() == 2;
    CHECK((p->grad_factors() != nullptr) == weight);
    const std::vector<double> g = p->grads();
    const auto numeric = param_central_differences(*p, [&] { return loss().value(0); });
    for (std::size_t k = 0; k < g.size(); ++k)
      CHECK(g[k] == Approx(numeric[k]).margin(1e-8).epsilon(1e-6));
  }
}

namespace {
// Trains a batch-of-one MLP `steps` steps; with `read` the gradients are
// read (written out) between backward and the update, so the update takes
// the dense path. With `fused` the update runs inside the sweep.
std::vector<std::vector<double>> train(tg::DType dtype, nn::Optimizer& opt, nn::MLP& m, bool read,
                                       bool fused, int* factored) {
  tg::Tape tape;
  std::unique_ptr<nn::FusedUpdate> hook;
  if (fused) hook = std::make_unique<nn::FusedUpdate>(opt, tape);
  for (int s = 0; s < 4; ++s) {
    tape.clear();
    tg::TapeScope scope(tape);
    const std::vector<double> x = sample(5, 60 + static_cast<unsigned>(s), -1, 1);
    const std::vector<std::int32_t> label{s % 3};
    tg::Tensor loss = nn::cross_entropy(m(row(x, dtype)), label);
    opt.zero_grad();
    if (fused) hook->begin();
    loss.backward();
    for (nn::Parameter* p : m.parameters()) {
      *factored += p->grad_factors() != nullptr;
      if (read) p->grads();
    }
    if (fused)
      hook->finish();
    else
      opt.step();
  }
  std::vector<std::vector<double>> out;
  for (nn::Parameter* p : m.parameters()) out.push_back(p->values());
  return out;
}
}  // namespace

TEST_CASE("updates from factors equal updates from the written product", "[nn][optim][outer]") {
  const auto adam = [](nn::MLP& m) {
    return std::unique_ptr<nn::Optimizer>(
        new nn::Adam(m.parameters(), {.lr = 0.05, .weight_decay = 0.01}));
  };
  const auto sgd = [](nn::MLP& m) {
    return std::unique_ptr<nn::Optimizer>(new nn::SGD(m.parameters(), {.lr = 0.1}));
  };
  const auto momentum = [](nn::MLP& m) {
    return std::unique_ptr<nn::Optimizer>(
        new nn::SGD(m.parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01}));
  };
  const auto nesterov = [](nn::MLP& m) {
    return std::unique_ptr<nn::Optimizer>(
        new nn::SGD(m.parameters(), {.lr = 0.1, .momentum = 0.8, .nesterov = true}));
  };
  for (tg::DType dtype : {tg::DType::f64, tg::DType::f32}) {
    CAPTURE(std::string(tg::dtype_name(dtype)));
    int k = 0;
    for (const auto& make : {+adam, +sgd, +momentum, +nesterov}) {
      CAPTURE(k++);
      // 37 columns: rows of the first weight cross the 16-element cuts
      // between threads at odd places.
      const std::vector<std::int64_t> sizes{5, 37, 6, 3};
      // The reference reads every gradient before a step after backward.
      nn::MLP ref(sizes, {.dtype = dtype, .seed = 4});
      auto oref = make(ref);
      int dense = 0;
      const auto want = train(dtype, *oref, ref, true, false, &dense);
      for (bool fused : {false, true}) {
        CAPTURE(fused);
        nn::MLP m(sizes, {.dtype = dtype, .seed = 4});
        auto opt = make(m);
        int factored = 0;
        CHECK(train(dtype, *opt, m, false, fused, &factored) == want);
        CHECK(factored == 4 * 3);  // three weights, four steps, all as factors
      }
      nn::MLP start(sizes, {.dtype = dtype, .seed = 4});
      std::vector<std::vector<double>> v0;
      for (nn::Parameter* p : start.parameters()) v0.push_back(p->values());
      CHECK(want != v0);  // and training moved them
    }
  }
}

TEST_CASE("replicas write out a factored gradient before summing", "[nn][replicas][outer]") {
  nn::Parameter w("w", tg::Shape{1, 3}, tg::DType::f64);
  w.set_replicas(2);
  w.zero_grad();
  {
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::sum(tg::matmul(row({2.0}), w.var(tape))).backward();  // replica 0: factors
    REQUIRE(w.grad_factors() != nullptr);
  }
  {
    tg::Tape tape;
    tg::TapeScope scope(tape);
    const nn::ReplicaScope r(1);
    tg::sum(tg::matmul(row({3.0}), w.var(tape))).backward();  // replica 1: written
  }
  REQUIRE(w.reduce_begin());
  w.reduce_range(0, 3);
  w.reduce_end();
  CHECK(w.grads() == std::vector<double>{5, 5, 5});
}

namespace {
// An optimiser of the user's own: sign descent, reading raw_grad() as the
// Optimizer contract allows. It must never see a gradient still as factors.
struct SignDescent : nn::Optimizer {
  using nn::Optimizer::Optimizer;
  const char* kind() const override { return "sign"; }
  int saw_factors = 0;
  void update_range(std::size_t i, std::int64_t b, std::int64_t e) override {
    nn::Parameter* p = params_[i];
    saw_factors += p->grad_factors() != nullptr;
    double* w = static_cast<double*>(p->raw_value());
    const double* g = static_cast<const double*>(p->raw_grad());
    for (std::int64_t k = b; k < e; ++k) w[k] -= lr() * ((g[k] > 0) - (g[k] < 0));
  }
};
}  // namespace

TEST_CASE("an optimiser that does not read factors gets the written gradient",
          "[nn][optim][outer]") {
  nn::Parameter w("w", tg::Shape{2, 3}, tg::DType::f64);
  SignDescent opt({&w}, 0.5);
  tg::Tape tape;
  tg::TapeScope scope(tape);
  opt.zero_grad();
  tg::sum(tg::linear(row(kX), w.var(tape), tg::Tensor()) * row(kC)).backward();
  REQUIRE(w.grad_factors() != nullptr);
  opt.step();
  CHECK(opt.saw_factors == 0);
  // dW = {3, -4, 1, -4.5, 6, -1.5}: each weight moves by -0.5 sign(dW)
  CHECK(w.values() == std::vector<double>{-0.5, 0.5, -0.5, 0.5, -0.5, 0.5});
}
