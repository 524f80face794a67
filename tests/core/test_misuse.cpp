// Each misuse throws a tapegrad::Error whose message says what was wrong.
#include "helpers.hpp"

using Catch::Matchers::Contains;

TEST_CASE("a stale scalar handle after clear() throws", "[misuse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(1);
  tape.clear();
  REQUIRE_THROWS_WITH(x.value(), Contains("stale handle") && Contains("cleared or rewound"));
  REQUIRE_THROWS_WITH(x + x, Contains("stale handle"));
  REQUIRE_THROWS_WITH(x.backward(), Contains("stale handle"));
}

TEST_CASE("a stale tensor handle after clear() or rewind() throws", "[misuse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor keep = tg::tensor({1.0});
  const tg::Mark m = tape.mark();
  tg::Tensor t = tg::tensor({1.0, 2.0});
  tape.rewind(m);
  CHECK(keep.value(0) == 1.0);  // below the mark: still valid
  REQUIRE_THROWS_WITH(t.values(), Contains("stale handle"));
  REQUIRE_THROWS_WITH(tg::sum(t), Contains("sum: stale handle"));
  tape.clear();
  REQUIRE_THROWS_WITH(keep.values(), Contains("stale handle"));
  REQUIRE_THROWS_WITH(tape.rewind(m), Contains("before the last clear()"));
}

TEST_CASE("empty handles throw instead of crashing", "[misuse]") {
  tg::Scalar s;
  tg::Tensor t;
  REQUIRE_THROWS_WITH(s.value(), Contains("empty Scalar handle"));
  REQUIRE_THROWS_WITH(t.shape(), Contains("empty Tensor handle"));
}

TEST_CASE("shape mismatches name the op and both shapes", "[misuse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor a = tg::zeros({3, 2}), b = tg::zeros({3, 2});
  REQUIRE_THROWS_WITH(tg::matmul(a, b), "matmul: (3x2) @ (3x2): inner dimensions 2 and 3 differ");
  REQUIRE_THROWS_WITH(tg::add(tg::zeros({2, 3}), tg::zeros({4})),
                      Contains("add: shapes (2x3) and (4) do not broadcast"));
  REQUIRE_THROWS_WITH(tg::reshape(a, {4, 2}), Contains("reshape: cannot reshape (3x2)"));
  REQUIRE_THROWS_WITH(tg::sum(a, 2), Contains("sum: axis 2 is out of range for shape (3x2)"));
  REQUIRE_THROWS_WITH(tg::slice_rows(a, 2, 5), Contains("rows [2, 5) are out of range"));
  REQUIRE_THROWS_WITH(tg::linear(a, tg::zeros({4, 3}), tg::Tensor()),
                      Contains("linear: input (3x2) and weight (4x3) do not fit"));
  REQUIRE_THROWS_WITH(tg::tensor({1.0, 2.0, 3.0}, tg::Shape{2, 2}),
                      Contains("3 values given for shape (2x2)"));
  REQUIRE_THROWS_WITH(tg::add(tg::zeros({2}, {.dtype = tg::DType::f32}), tg::zeros({2})),
                      Contains("dtypes differ (float32 and float64)"));
  const std::vector<std::int32_t> bad{0, 7};
  REQUIRE_THROWS_WITH(tg::softmax_cross_entropy(tg::zeros({2, 3}), bad),
                      Contains("label 7 of row 1 is outside [0, 3)"));
}

TEST_CASE("hostile shapes fail before any allocation", "[misuse]") {
  REQUIRE_THROWS_WITH(tg::Shape({-1, 3}), Contains("dimension 0 is negative"));
  REQUIRE_THROWS_WITH(tg::Shape({1 << 30, 1 << 30, 1 << 30}), Contains("element count overflows"));
  REQUIRE_THROWS_WITH(tg::Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), Contains("rank 9 exceeds the limit"));
  tg::Tape tape;
  tg::TapeScope scope(tape);
  REQUIRE_THROWS_WITH(tg::zeros({1 << 20, 1 << 20}), Contains("more than this machine's memory") &&
                                                         Contains("nothing was allocated"));
  REQUIRE_THROWS_WITH(tg::tensor({1.0}, tg::Shape{0, -2}), Contains("dimension 1 is negative"));
}

TEST_CASE("backward on a non-scalar needs a seed of the same shape", "[misuse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({1.0, 2.0, 3.0}, {.requires_grad = true});
  tg::Tensor y = x * x;
  REQUIRE_THROWS_WITH(y.backward(), Contains("the root has shape (3)") && Contains("pass a seed"));
  REQUIRE_THROWS_WITH(y.backward(tg::ones({2})),
                      "backward: seed of shape (2) does not match the root's shape (3)");
  y.backward(tg::tensor({1.0, 0.0, 1.0}));
  require_close(x.grads(), {2, 0, 6}, 0);
}

TEST_CASE("operands from different tapes are refused", "[misuse]") {
  tg::Tape a, b;
  tg::Scalar x = a.variable(1), y = b.variable(2);
  REQUIRE_THROWS_WITH(x * y, Contains("different tapes"));
  tg::Tensor u, v;
  {
    tg::TapeScope s(a);
    u = tg::ones({2});
  }
  {
    tg::TapeScope s(b);
    v = tg::ones({2});
  }
  REQUIRE_THROWS_WITH(u + v, Contains("different tapes"));
}

TEST_CASE("only leaves may be written", "[misuse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(1);
  tg::Scalar y = x * 2.0;
  REQUIRE_THROWS_WITH(y.set_value(3), Contains("only leaves may be set"));
  tg::Tensor t = tg::ones({2}) * 2.0;
  REQUIRE_THROWS_WITH(t.mutable_data<double>(), Contains("only leaves may be written"));
  REQUIRE_THROWS_WITH(tg::ones({2}).data<float>(), Contains("holds float64, not float32"));
  REQUIRE_THROWS_WITH(tg::ones({2}).item(), Contains("item() needs exactly one"));
}

TEST_CASE("an op's attributes come back as the struct that stored them, or an error", "[misuse]") {
  struct Slope {
    double value;
  };
  struct Axis {
    std::int64_t axis;
    bool keepdims;
  };
  tg::TensorAttrs a = tg::TensorAttrs::of(Slope{0.25});
  CHECK_FALSE(a.empty());
  CHECK(a.get<Slope>().value == 0.25);
  CHECK_THROWS_WITH(a.get<Axis>(),
                    Catch::Contains("read as a type other than the one the op stored"));
  a.set(Axis{-1, true});
  CHECK(a.get<Axis>().axis == -1);
  CHECK(a.get<Axis>().keepdims);
  CHECK(tg::TensorAttrs{}.empty());
  // The library's own ops store theirs: a sum along an axis reads back its axis.
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({{1.0, 2.0}, {3.0, 4.0}}, {.requires_grad = true});
  tg::Tensor s = tg::sum(x, 1);
  CHECK_THROWS_AS(tape.tensor_node(s.index()).attrs.get<Slope>(), tg::Error);
  CHECK(tg::gate_text(*tape.tensor_node(s.index()).op) == "copies the gradient to every element");
}
