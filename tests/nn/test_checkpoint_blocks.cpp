// Checkpointed blocks (tapegrad::checkpoint, MLPOptions::checkpoint_layers):
// the same values and gradients as the block recorded directly, less tape,
// and clear errors.
#include <tapegrad/nn.hpp>

#include <cstring>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {
std::vector<double> batch(std::int64_t n, std::int64_t d, std::uint64_t seed) {
  return sample(n * d, seed, -1.0, 1.0);
}
}  // namespace

TEST_CASE("checkpoint: values and gradients equal the block recorded directly", "[checkpoint]") {
  for (const tg::DType dt : {tg::DType::f64, tg::DType::f32}) {
    tg::Tape tape;
    tg::TapeScope scope(tape);
    const tg::Tensor w = tg::tensor(batch(3, 4, 7), {3, 4}, {.dtype = dt, .requires_grad = true});
    const std::vector<double> xv = batch(5, 3, 8);
    const auto block = [&](const tg::Tensor& x) { return tg::tanh(tg::matmul(x, w)) * 2.0; };
    // Plain.
    tg::Tensor x1 = tg::tensor(xv, {5, 3}, {.dtype = dt, .requires_grad = true});
    tg::Tensor y1 = block(x1);
    tg::sum(tg::sigmoid(y1)).backward();
    const std::vector<double> gx1 = x1.grads(), gw1 = w.grads(), v1 = y1.values();
    tape.zero_grad();
    // Checkpointed: w is captured from the outer tape, which the scratch
    // tape cannot use, so the block reads it through a parameter instead.
    nn::Parameter p("w", {3, 4}, dt);
    p.set_values(w.values());
    const auto pblock = [&](const tg::Tensor& x) { return tg::tanh(tg::matmul(x, p.var())) * 2.0; };
    tg::Tensor x2 = tg::tensor(xv, {5, 3}, {.dtype = dt, .requires_grad = true});
    tg::Tensor y2 = tg::checkpoint(pblock, x2);
    CHECK(tape.tensor_node(y2.index()).op->name == std::string("checkpoint"));
    tg::sum(tg::sigmoid(y2)).backward();
    CHECK(y2.values() == v1);  // the same ops in the same order: the same bits
    CHECK(x2.grads() == gx1);
    CHECK(p.grads() == gw1);
  }
}

TEST_CASE("checkpoint: gradients against finite differences, nested blocks", "[checkpoint]") {
  nn::Parameter p("w", {3, 3}, tg::DType::f64);
  p.set_values(batch(3, 3, 11));
  const auto inner = [&](const tg::Tensor& x) { return tg::sin(tg::matmul(x, p.var())); };
  const tg::TensorFn f = [&](std::span<const tg::Tensor> in) {
    const auto outer = [&](const tg::Tensor& x) { return tg::checkpoint(inner, x) * x; };
    return tg::sum(tg::checkpoint(outer, in[0]));
  };
  require_gradcheck(f, {input({2, 3}, 12)});
}

TEST_CASE("checkpoint_layers: training gives the same losses and parameters, less tape",
          "[checkpoint][nn]") {
  const std::vector<double> xv = batch(256, 20, 3);
  std::vector<std::int32_t> labels(256);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int32_t>(i % 4);
  std::vector<std::vector<double>> losses(2), params(2);
  std::size_t peak[2] = {0, 0};
  for (int ck = 0; ck < 2; ++ck) {
    nn::MLP m({20, 64, 64, 64, 4}, {.seed = 5, .checkpoint_layers = ck == 1});
    nn::Adam adam(m.parameters(), {.lr = 1e-2});
    tg::Tape tape;
    for (int step = 0; step < 5; ++step) {
      tape.clear();
      tape.reset_peak();
      tg::TapeScope scope(tape);
      tg::Tensor x = tg::tensor(xv, {256, 20}, {.dtype = tg::DType::f32});
      tg::Tensor loss = nn::cross_entropy(m(x), labels);
      adam.zero_grad();
      loss.backward();
      adam.step();
      losses[ck].push_back(loss.value(0));
      peak[ck] = std::max(peak[ck], tape.memory().peak_bytes);
    }
    for (nn::Parameter* p : m.parameters()) {
      const std::vector<double> v = p->values();
      params[ck].insert(params[ck].end(), v.begin(), v.end());
    }
  }
  CHECK(losses[0] == losses[1]);
  CHECK(params[0] == params[1]);
  // Each layer keeps its output only: the product's output, its gradient and
  // the activation's input are not on the tape.
  INFO("peak without " << peak[0] << " bytes, with " << peak[1]);
  CHECK(static_cast<double>(peak[1]) < 0.6 * static_cast<double>(peak[0]));
  // Recomputing holds one layer at a time.
  CHECK(tg::checkpoint_scratch_peak() > 0);
  CHECK(tg::checkpoint_scratch_peak() < peak[0]);
}

TEST_CASE("checkpoint: clear errors, and the tape stays usable", "[checkpoint][errors]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({1.0, 2.0}, {.requires_grad = true});
  tg::Tensor outside = tg::tensor({3.0, 4.0});
  // A block that returns a tensor of the outer tape.
  CHECK_THROWS_WITH(tg::checkpoint([&](const tg::Tensor&) { return outside; }, x),
                    Catch::Contains("must return a tensor it computed from its input"));
  // A block that mixes in a tensor of the outer tape.
  CHECK_THROWS_WITH(tg::checkpoint([&](const tg::Tensor& in) { return in * outside; }, x),
                    Catch::Contains("tape"));
  // A block that throws: the error passes through.
  CHECK_THROWS_WITH(
      tg::checkpoint([](const tg::Tensor&) -> tg::Tensor { throw tg::Error("boom"); }, x),
      Catch::Contains("boom"));
  // A block whose output changes shape between runs (on a tape of its own:
  // a later sweep over this one would recompute the block again).
  {
    tg::Tape t2;
    tg::TapeScope s2(t2);
    tg::Tensor x2 = tg::tensor({1.0, 2.0}, {.requires_grad = true});
    int runs = 0;
    tg::Tensor y = tg::checkpoint(
        [&](const tg::Tensor& in) { return ++runs == 1 ? in * 2.0 : tg::sum(in); }, x2);
    CHECK_THROWS_WITH(tg::sum(y).backward(), Catch::Contains("pure function of its input"));
  }
  // Second order through a block names it.
  tg::Tensor z = tg::checkpoint([](const tg::Tensor& in) { return in * in; }, x);
  CHECK_THROWS_WITH(tg::hvp(tg::sum(z), {x}, std::vector<double>{1.0, 0.0}),
                    Catch::Contains("checkpoint"));
  // Still usable.
  tape.zero_grad();
  tg::Tensor w = tg::checkpoint([](const tg::Tensor& in) { return in * in; }, x);
  tg::sum(w).backward();
  CHECK(x.grads() == std::vector<double>{2.0, 4.0});
}
