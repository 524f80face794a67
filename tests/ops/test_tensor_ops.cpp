// Every tensor op in float64 against central finite differences, on several
// shapes including broadcasting and size-1 axes; inputs kept away from kinks.
#include "helpers.hpp"

namespace {
using T = std::span<const tg::Tensor>;

// Shape pairs that broadcast: equal, row, column, scalar, size-1 axes, rank 3.
const std::vector<std::pair<tg::Shape, tg::Shape>> kPairs = {
    {{3}, {3}},   {{2, 3}, {2, 3}}, {{2, 3}, {3}},       {{2, 3}, {2, 1}},
    {{2, 3}, {}}, {{1, 3}, {2, 1}}, {{2, 1, 4}, {3, 1}}, {{2, 3, 4}, {1, 3, 1}},
};

void binary_case(const char* name, const tg::TensorFn& f, double lo, double hi, double gap) {
  std::uint64_t seed = 1;
  for (const auto& [sa, sb] : kPairs) {
    INFO(name << " " << sa.str() << " with " << sb.str());
    require_gradcheck(f, {input(sa, seed++, lo, hi, gap), input(sb, seed++, lo, hi, gap)});
    require_gradcheck(f, {input(sb, seed++, lo, hi, gap), input(sa, seed++, lo, hi, gap)});
  }
}

const std::vector<tg::Shape> kShapes = {{}, {5}, {3, 4}, {2, 1, 3}, {2, 3, 2, 2}};

void unary_case(const char* name, const tg::TensorFn& f, double lo, double hi, double gap = 0) {
  std::uint64_t seed = 100;
  for (const auto& s : kShapes) {
    INFO(name << " " << s.str());
    require_gradcheck(f, {input(s, seed++, lo, hi, gap)});
  }
}
}  // namespace

TEST_CASE("broadcasting add, sub, mul, div", "[ops][tensor]") {
  binary_case(
      "add", [](T x) { return x[0] + x[1]; }, -2, 2, 0);
  binary_case(
      "sub", [](T x) { return x[0] - x[1]; }, -2, 2, 0);
  binary_case(
      "mul", [](T x) { return x[0] * x[1]; }, -2, 2, 0);
  binary_case(
      "div", [](T x) { return x[0] / x[1]; }, 0.5, 2, 0);
}

TEST_CASE("broadcasting maximum and minimum away from ties", "[ops][tensor]") {
  // Inputs in disjoint-ish ranges would hide routing; instead nudge by index.
  binary_case(
      "maximum", [](T x) { return tg::maximum(x[0], x[1] + 0.0137); }, -2, 2, 0);
  binary_case(
      "minimum", [](T x) { return tg::minimum(x[0], x[1] - 0.0137); }, -2, 2, 0);
}

TEST_CASE("numbers on either side of a tensor", "[ops][tensor]") {
  unary_case(
      "x+c", [](T x) { return (x[0] + 1.5) * 2.0 - 0.5; }, -2, 2);
  unary_case(
      "c-x, c/x", [](T x) { return (3.0 - x[0]) + 2.0 / x[0] + x[0] / 4.0; }, 0.5, 2);
}

TEST_CASE("unary elementwise ops", "[ops][tensor]") {
  unary_case(
      "neg", [](T x) { return -x[0]; }, -2, 2);
  unary_case(
      "exp", [](T x) { return tg::exp(x[0]); }, -2, 2);
  unary_case(
      "log", [](T x) { return tg::log(x[0]); }, 0.2, 3);
  unary_case(
      "sqrt", [](T x) { return tg::sqrt(x[0]); }, 0.2, 3);
  unary_case(
      "abs", [](T x) { return tg::abs(x[0]); }, -2, 2, 0.05);
  unary_case(
      "pow 3", [](T x) { return tg::pow(x[0], 3); }, -2, 2);
  unary_case(
      "pow -0.5", [](T x) { return tg::pow(x[0], -0.5); }, 0.2, 3);
  unary_case(
      "sigmoid", [](T x) { return tg::sigmoid(x[0]); }, -4, 4);
  unary_case(
      "tanh", [](T x) { return tg::tanh(x[0]); }, -3, 3);
  unary_case(
      "relu", [](T x) { return tg::relu(x[0]); }, -2, 2, 0.05);
  unary_case(
      "leaky_relu", [](T x) { return tg::leaky_relu(x[0], 0.1); }, -2, 2, 0.05);
}

TEST_CASE("reductions: sum, mean, max, whole and along axes", "[ops][tensor]") {
  unary_case(
      "sum", [](T x) { return tg::sum(x[0]); }, -2, 2);
  unary_case(
      "mean", [](T x) { return tg::mean(x[0]); }, -2, 2);
  for (const tg::Shape& s :
       {tg::Shape{4}, tg::Shape{3, 4}, tg::Shape{2, 3, 4}, tg::Shape{2, 1, 3}}) {
    for (int axis = -1; axis < s.rank(); ++axis) {
      for (bool keep : {false, true}) {
        INFO(s.str() << " axis " << axis << " keepdims " << keep);
        require_gradcheck([=](T x) { return tg::sum(x[0], axis, keep); }, {input(s, 7)});
        require_gradcheck([=](T x) { return tg::mean(x[0], axis, keep); }, {input(s, 8)});
        require_gradcheck([=](T x) { return tg::max(x[0], axis, keep); }, {input(s, 9)});
      }
    }
  }
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(tg::sum(x, 0).shape() == tg::Shape{3});
  CHECK(tg::sum(x, 1, true).shape() == tg::Shape{2, 1});
  require_close(tg::mean(x, 0).values(), {2.5, 3.5, 4.5}, 1e-15);
}

TEST_CASE("matmul: 2-D and batched", "[ops][tensor]") {
  const auto mm = [](T x) { return tg::matmul(x[0], x[1]); };
  require_gradcheck(mm, {input({3, 4}, 1), input({4, 2}, 2)});
  require_gradcheck(mm, {input({1, 5}, 3), input({5, 3}, 4)});
  require_gradcheck(mm, {input({4, 1}, 5), input({1, 3}, 6)});
  require_gradcheck(mm, {input({2, 3, 4}, 7), input({2, 4, 5}, 8)});
  require_gradcheck(mm, {input({2, 3, 4}, 9), input({4, 5}, 10)});
  require_gradcheck(mm, {input({3, 4}, 11), input({2, 4, 5}, 12)});
}

TEST_CASE("transpose, reshape, slice_rows, concat", "[ops][tensor]") {
  require_gradcheck([](T x) { return tg::transpose(x[0]); }, {input({3, 4}, 1)});
  require_gradcheck([](T x) { return tg::transpose(x[0]); }, {input({2, 3, 4}, 2)});
  require_gradcheck([](T x) { return tg::reshape(x[0], {4, 3}); }, {input({3, 4}, 3)});
  require_gradcheck([](T x) { return tg::slice_rows(x[0], 1, 3); }, {input({4, 3}, 4)});
  require_gradcheck(
      [](T x) {
        return tg::concat({x[0], x[1]}, 0);
      },
      {input({2, 3}, 5), input({1, 3}, 6)});
  require_gradcheck(
      [](T x) {
        return tg::concat({x[0], x[1], x[0]}, 1);
      },
      {input({2, 3}, 7), input({2, 1}, 8)});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor a = tg::tensor({{1, 2, 3}, {4, 5, 6}});
  require_close(tg::transpose(a).values(), {1, 4, 2, 5, 3, 6}, 0);
  require_close(tg::concat({a, a}, 1).values(), {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}, 0);
  require_close(tg::slice_rows(a, 1, 2).values(), {4, 5, 6}, 0);
}

TEST_CASE("fused linear, softmax, losses", "[ops][tensor]") {
  require_gradcheck([](T x) { return tg::linear(x[0], x[1], x[2]); },
                    {input({4, 3}, 1), input({2, 3}, 2), input({2}, 3)});
  require_gradcheck([](T x) { return tg::linear(x[0], x[1], tg::Tensor()); },
                    {input({1, 3}, 4), input({5, 3}, 5)});
  require_gradcheck([](T x) { return tg::softmax(x[0]); }, {input({3, 4}, 6)});
  const std::vector<std::int32_t> labels{2, 0, 3};
  require_gradcheck([&](T x) { return tg::softmax_cross_entropy(x[0], labels); },
                    {input({3, 4}, 7, -3, 3)});
  require_gradcheck([](T x) { return tg::bce_with_logits(x[0], x[1]); },
                    {input({2, 3}, 8, -3, 3), input({2, 3}, 9, 0, 1)});
}

TEST_CASE("losses stay finite and exact for extreme logits", "[ops][tensor]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor z = tg::tensor({{1000, 0, -1000}, {-1000, 0, 1000}}, {.requires_grad = true});
  const std::vector<std::int32_t> labels{0, 0};
  tg::Tensor l = tg::softmax_cross_entropy(z, labels);
  CHECK(l.value(0) == Approx(1000.0).epsilon(1e-12));  // (0 + 2000) / 2
  l.backward();
  require_close(z.grads(), {0, 0, 0, -0.5, 0, 0.5}, 1e-12);

  tg::Tensor bz = tg::tensor({800.0, -800.0}, {.requires_grad = true});
  tg::Tensor l2 = tg::bce_with_logits(bz, tg::tensor({0.0, 1.0}));
  CHECK(l2.value(0) == Approx(800.0).epsilon(1e-12));
  l2.backward();
  require_close(bz.grads(), {0.5, -0.5}, 1e-12);
}

TEST_CASE("Scalar and Tensor on one tape, gradients both ways", "[ops][interop]") {
  require_gradcheck(
      [](T x) {
        tg::Scalar s = tg::sum(x[1]).item();  // tensor -> scalar
        tg::Scalar k = tg::tanh(s) * 2.0;     // scalar ops
        return k * x[0];                      // scalar scales tensor
      },
      {input({2, 3}, 1), input({3}, 2, -0.5, 0.5)});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor w = tg::tensor({1.0, 2.0, 3.0}, {.requires_grad = true});
  tg::Scalar s = tg::var(2.0);
  tg::Scalar loss = tg::sum(s * w).item() * s;  // s^2 * sum(w)
  loss.backward();
  CHECK(loss.value() == 24);
  CHECK(s.grad() == 24);  // 2 s sum(w)
  require_close(w.grads(), {4, 4, 4}, 0);
}

TEST_CASE("float32 tensors compute the same gradients to float precision", "[ops][tensor]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  std::vector<double> value, gx, gw;
  for (tg::DType dt : {tg::DType::f64, tg::DType::f32}) {
    tg::Tensor x =
        tg::tensor({{0.5, -1.0, 2.0}, {1.5, 0.25, -0.75}}, {.dtype = dt, .requires_grad = true});
    tg::Tensor w =
        tg::tensor({{0.1, 0.2, 0.3}, {-0.4, 0.5, -0.6}}, {.dtype = dt, .requires_grad = true});
    tg::Tensor y = tg::sum(tg::tanh(tg::matmul(x, tg::transpose(w))));
    y.backward();
    CHECK(y.dtype() == dt);
    if (dt == tg::DType::f64) {
      value = y.values(), gx = x.grads(), gw = w.grads();
    } else {
      require_close(y.values(), value, 1e-6);
      require_close(x.grads(), gx, 1e-6);
      require_close(w.grads(), gw, 1e-6);
    }
  }
}

TEST_CASE("zero-size tensors flow through the ops and backward (found by fuzzing)",
          "[ops][tensor]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor e = tg::zeros({0, 3}, {.requires_grad = true});
  tg::Tensor w = tg::ones({2, 3}, {.requires_grad = true});
  tg::Tensor a = tg::reshape(e, {3, 0});
  tg::Tensor b = tg::concat({e, e}, 0);
  tg::Tensor c = tg::slice_rows(w, 1, 1);
  tg::Tensor d = tg::linear(e, w, tg::Tensor());
  tg::Tensor f = tg::matmul(tg::transpose(w), tg::zeros({2, 0}));
  CHECK(a.shape() == tg::Shape{3, 0});
  CHECK(b.shape() == tg::Shape{0, 3});
  CHECK(c.numel() == 0);
  CHECK(d.shape() == tg::Shape{0, 2});
  CHECK(f.shape() == tg::Shape{3, 0});
  tg::Tensor total = tg::sum(a) + tg::sum(b) + tg::sum(c) + tg::sum(d) + tg::sum(f) + tg::sum(w);
  total.backward();
  CHECK(total.value(0) == 6);
  require_close(w.grads(), {1, 1, 1, 1, 1, 1}, 0);
}
