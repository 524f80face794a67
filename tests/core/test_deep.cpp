// Deep graphs: the sweep is a loop, so depth costs memory, never stack.
#include "helpers.hpp"

TEST_CASE("a scalar chain of 10 million nodes runs backward", "[deep]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(1.0);
  tg::Scalar acc = x;
  const int n = 10'000'000;
  for (int i = 0; i < n; ++i) acc = acc + x;  // acc = (n + 1) x
  acc.backward();
  CHECK(acc.value() == n + 1.0);
  CHECK(x.grad() == n + 1.0);
}

TEST_CASE("a tensor chain of 100,000 nodes runs backward", "[deep]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({0.5, -0.5}, {.requires_grad = true});
  tg::Tensor acc = x;
  const int n = 100'000;
  for (int i = 0; i < n; ++i) acc = acc + x;
  tg::sum(acc).backward();
  require_close(x.grads(), {n + 1.0, n + 1.0}, 0);
}
