// Tape semantics: accumulation, zero_grad, repeated backward, no_grad,
// detach, scopes, clear and rewind, memory per node.
#include "helpers.hpp"

TEST_CASE("gradients accumulate across backward calls until zero_grad", "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(3);
  tg::Scalar f = x * x;  // df/dx = 6
  f.backward();
  CHECK(x.grad() == 6);
  tg::Scalar g = x * 2.0;  // a second graph sharing x
  g.backward();
  CHECK(x.grad() == 8);
  tape.zero_grad();
  CHECK(x.grad() == 0);
  g.backward();
  CHECK(x.grad() == 2);
}

TEST_CASE("backward twice over the same nodes adds the gradient once more, never double-counts",
          "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(2);
  tg::Scalar h = tg::tanh(x * x);  // interior nodes with nonzero adjoints
  tg::Scalar f = h * 3.0;
  f.backward();
  const double once = x.grad();
  const double h_once = h.grad();
  CHECK(h_once == 3);
  f.backward();
  CHECK(x.grad() == Approx(2 * once).epsilon(1e-15));
  CHECK(h.grad() == Approx(2 * h_once).epsilon(1e-15));
  // A later graph built on top of swept nodes sends only its own gradient.
  tg::Scalar k = h * 10.0;
  k.backward();
  CHECK(x.grad() == Approx(2 * once + 10.0 / 3.0 * once).epsilon(1e-14));

  tg::Tensor w = tg::tensor({1.0, -2.0}, {.requires_grad = true});
  tg::Tensor m = tg::sum(tg::tanh(w * w));
  m.backward();
  const auto g1 = w.grads();
  m.backward();
  require_close(w.grads(), {2 * g1[0], 2 * g1[1]}, 1e-15);
}

TEST_CASE("no_grad records constants; detach stops gradients", "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(2);
  tg::Scalar y;
  {
    tg::NoGrad off;
    y = x * x;
    CHECK(y.op() == tg::ScalarOp::constant);
  }
  CHECK(tape.grad_enabled());
  (y * x).backward();
  CHECK(x.grad() == 4);  // y is a constant 4

  tg::Scalar d = tg::detach(x);
  CHECK(d.value() == 2);
  tape.zero_grad();
  (d * x).backward();
  CHECK(x.grad() == 2);
  CHECK(d.grad() == 0);

  tg::Tensor w = tg::tensor({1.0, 2.0}, {.requires_grad = true});
  tg::Tensor c = tg::detach(w);
  CHECK_FALSE(c.requires_grad());
  tg::sum(c * w).backward();
  require_close(w.grads(), {1, 2}, 0);
  tg::Tensor v;
  {
    tg::NoGrad off;
    v = w * 2.0;
  }
  CHECK_FALSE(v.requires_grad());
}

TEST_CASE("constants take no gradient; variables do", "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar c = tg::constant(5), x = tg::var(2);
  (c * x).backward();
  CHECK(c.grad() == 0);
  CHECK(x.grad() == 5);
  tg::Tensor k = tg::tensor({1.0, 2.0});
  tg::Tensor w = tg::tensor({3.0, 4.0}, {.requires_grad = true});
  tg::Tensor prod = k * w;
  CHECK(prod.requires_grad());
  CHECK_FALSE((k * k).requires_grad());
  tg::sum(prod).backward();
  require_close(k.grads(), {0, 0}, 0);
  require_close(w.grads(), {1, 2}, 0);
}

TEST_CASE("TapeScope switches the current tape and restores it", "[tape]") {
  tg::Tape a, b;
  tg::TapeScope sa(a);
  tg::Scalar x = tg::var(1);
  {
    tg::TapeScope sb(b);
    tg::Scalar y = tg::var(2);
    CHECK(&y.tape() == &b);
    CHECK(&tg::current_tape() == &b);
  }
  CHECK(&tg::current_tape() == &a);
  CHECK(&x.tape() == &a);
}

TEST_CASE("clear keeps capacity and invalidates handles; rewind keeps the prefix", "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar p = tg::var(0.5);  // a parameter below the mark
  const tg::Mark m = tape.mark();
  for (int step = 0; step < 3; ++step) {
    tape.rewind(m);
    tg::Scalar loss = tg::pow(p - 2.0, 2);
    tape.zero_grad();
    loss.backward();
    p.set_value(p.value() - 0.25 * p.grad());
  }
  CHECK(p.value() == Approx(2 - 1.5 * 0.125).epsilon(1e-15));  // error halves each step
  CHECK(tape.scalar_count() > 2);
  tape.rewind(m);
  CHECK(tape.scalar_count() == m.scalars);
  tape.clear();
  CHECK(tape.scalar_count() == 1);  // the sink
  CHECK_THROWS_AS(p.value(), tg::Error);
}

TEST_CASE("a binary scalar op costs 40 bytes of tape", "[tape]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(1.0), y = tg::var(1.0);
  tg::Scalar acc = x;
  for (int i = 0; i < 1000; ++i) acc = (i % 2) ? acc + y : acc * y;
  acc.backward();
  const double before = static_cast<double>(tape.scalar_bytes());
  for (int i = 0; i < 1000; ++i) acc = (i % 2) ? acc + y : acc * y;
  acc.backward();
  CHECK((static_cast<double>(tape.scalar_bytes()) - before) / 1000.0 == 40.0);
}
