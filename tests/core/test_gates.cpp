// The four gate patterns of the reference, on small graphs.
#include "helpers.hpp"

TEST_CASE("add distributes the same gradient to every input", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(1.5), b = tg::var(-7), c = tg::var(2);
  tg::Scalar f = (a + b) * c;  // upstream into the add is c = 2
  f.backward();
  CHECK(a.grad() == 2);
  CHECK(b.grad() == 2);
}

TEST_CASE("mul switches: each input gets upstream x the other input", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(3), b = tg::var(-5);
  tg::Scalar f = (a * b) * 2.0;
  f.backward();
  CHECK(a.grad() == -10);  // 2 * b
  CHECK(b.grad() == 6);    // 2 * a
}

TEST_CASE("a value used three times adds up the three gradients", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(2);
  tg::Scalar f = x * 3.0 + x * x + tg::exp(x);  // df/dx = 3 + 2x + e^x
  f.backward();
  CHECK(x.grad() == Approx(3 + 4 + std::exp(2.0)).epsilon(1e-14));

  tg::Tensor t = tg::tensor({1.0, -2.0}, {.requires_grad = true});
  tg::Tensor g = tg::sum(t * 3.0 + t * t + tg::exp(t));
  g.backward();
  require_close(t.grads(), {3 + 2 + std::exp(1.0), 3 - 4 + std::exp(-2.0)}, 1e-12);
}

TEST_CASE("max routes the whole gradient to the larger input; ties go to the first", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(4), b = tg::var(-1);
  (tg::max(a, b) * 5.0).backward();
  CHECK(a.grad() == 5);
  CHECK(b.grad() == 0);

  tg::Scalar c = tg::var(2), d = tg::var(2);
  tg::max(c, d).backward();
  CHECK(c.grad() == 1);
  CHECK(d.grad() == 0);
  tg::Scalar e = tg::var(2), f = tg::var(2);
  tg::min(e, f).backward();
  CHECK(e.grad() == 1);
  CHECK(f.grad() == 0);
}

TEST_CASE("relu passes the gradient for x >= 0, including exactly 0", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar z = tg::var(0), n = tg::var(-0.5), p = tg::var(0.5);
  (tg::relu(z) + tg::relu(n) + tg::relu(p)).backward();
  CHECK(z.grad() == 1);
  CHECK(n.grad() == 0);
  CHECK(p.grad() == 1);

  tg::Tensor t = tg::tensor({0.0, -0.5, 0.5}, {.requires_grad = true});
  tg::sum(tg::relu(t)).backward();
  require_close(t.grads(), {1, 0, 1}, 0);
}

TEST_CASE("tensor router gates: maximum, minimum and max along an axis", "[gates]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor a = tg::tensor({1, 5, 3}, {.requires_grad = true});
  tg::Tensor b = tg::tensor({2, 5, 1}, {.requires_grad = true});
  tg::sum(tg::maximum(a, b)).backward();
  require_close(a.grads(), {0, 1, 1}, 0);  // the tie at index 1 goes to a
  require_close(b.grads(), {1, 0, 0}, 0);

  tg::Tensor m = tg::tensor({{1, 7, 7}, {4, 2, 0}}, {.requires_grad = true});
  tg::Tensor r = tg::max(m, 1);
  require_close(r.values(), {7, 4}, 0);
  tg::sum(r * tg::tensor({10, 20})).backward();
  require_close(m.grads(), {0, 10, 0, 20, 0, 0}, 0);  // first arg-max on a tie
}
