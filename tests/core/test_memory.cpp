// Tape memory you can see (Tape::memory) and cap (set_memory_budget): the
// accounting against the node and buffer sizes it must equal, the peak, and
// the budget's error, after which the tape is unchanged and usable.
#include "helpers.hpp"

TEST_CASE("a tape accounts for its scalar nodes, adjoints and tensor buffers", "[memory]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const tg::TapeMemory empty = tape.memory();
  CHECK(empty.scalar_nodes == 1);  // the sink
  CHECK(empty.adjoint_bytes == 0);
  tg::Scalar x = tg::var(1.0001), acc = x;
  for (int i = 0; i < 1000; ++i) acc = acc * x;
  tg::TapeMemory m = tape.memory();
  CHECK(m.scalar_nodes == 1002);
  CHECK(m.scalar_bytes == 1002 * 32);
  CHECK(m.nodes_by_op.front() == std::pair<std::string, std::size_t>{"mul", 1000});
  acc.backward();
  m = tape.memory();
  CHECK(m.adjoint_bytes == 1002 * 8);
  tg::Tensor t = tg::ones({100, 100}, {tg::DType::f64, true});
  tg::Tensor y = tg::sum(tg::exp(t));
  m = tape.memory();
  CHECK(m.tensor_nodes == 3);
  CHECK(m.tensor_bytes == 2 * 80000 + 8);  // ones, exp, the rank-0 sum
  y.backward();
  CHECK(tape.memory().tensor_bytes == 4 * 80000 + 2 * 8);  // and their gradients
  CHECK(m.held() >= m.in_use());
  const std::size_t before_clear = tape.memory().in_use();
  tape.clear();
  m = tape.memory();
  CHECK(m.in_use() < 100);
  CHECK(m.peak_bytes == before_clear);  // kept across clear()
  CHECK(m.pool_bytes >= 4 * 80000);     // buffers kept for the next step
  tape.reset_peak();
  CHECK(tape.memory().peak_bytes == tape.memory().in_use());
  CHECK(tape.memory().str().find("tape memory:") == 0);
}

TEST_CASE("a memory budget stops a recording before it is crossed, and the tape stays usable",
          "[memory][errors]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tape.set_memory_budget(1 << 20);  // 1 MiB: 32,768 scalar nodes
  tg::Scalar x = tg::var(1.00001), acc = x;
  std::string what;
  std::size_t recorded = 0;
  try {
    for (int i = 0; i < 1'000'000; ++i, ++recorded) acc = acc * x;
  } catch (const tg::Error& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("tape memory budget exceeded: 'mul' at") != std::string::npos);
  CHECK(what.find("test_memory.cpp") != std::string::npos);  // the line that asked
  CHECK(what.find("growing the scalar arrays from") != std::string::npos);
  CHECK(what.find("budget of 1.00 MiB") != std::string::npos);
  CHECK(recorded > 10'000);
  CHECK(tape.memory().held() <= (1u << 20));
  // The sweep's adjoints need room too, and the budget says so.
  CHECK_THROWS_WITH(acc.backward(), Catch::Contains("the backward sweep (adjoints of"));
  // The nodes recorded before the errors are intact: with room, the gradient is right.
  tape.set_memory_budget(2 << 20);
  acc.backward();
  const double n = static_cast<double>(recorded);
  CHECK(x.grad() == Approx((n + 1) * std::pow(1.00001, n)).epsilon(1e-9));
  // Clearing makes room again.
  tape.clear();
  tg::Scalar y = tg::var(2.0);
  (y * y).backward();
  CHECK(y.grad() == 4.0);
  // A tensor that would cross the budget names its op.
  try {
    const tg::Tensor big = tg::ones({1000, 1000}, {tg::DType::f64, false});
    CHECK(big.shape().numel() == 0);  // not reached
    FAIL("no error");
  } catch (const tg::Error& e) {
    CHECK(std::string(e.what()).find("'constant'") != std::string::npos);
  }
  tape.set_memory_budget(0);
  CHECK(tg::ones({1000, 1000}, {tg::DType::f64, false}).shape().numel() == 1'000'000);
}
