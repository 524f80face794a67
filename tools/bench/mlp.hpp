#pragma once
// The tensor benchmarks' MLP: 784-256-128-10 (float32) on a seeded random
// batch, with Adam; forward() records the loss on a cleared tape.
#include <tapegrad/nn.hpp>

#include <random>
#include <vector>

namespace tapegrad_bench {
namespace tg = tapegrad;

struct Fixture {
  explicit Fixture(std::int64_t batch)
      : model({784, 256, 128, 10}, {.seed = 1}),
        adam(model.parameters(), {}),
        x(static_cast<std::size_t>(batch * 784)),
        y(static_cast<std::size_t>(batch)),
        batch(batch) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0, 1);
    for (float& v : x) v = u(rng);
    for (auto& v : y) v = static_cast<std::int32_t>(rng() % 10);
  }
  tg::Tensor forward(tg::Tape& tape) {
    tape.clear();
    tg::TapeScope s(tape);
    return tg::nn::cross_entropy(
        model(tg::external({batch, 784}, tg::DType::f32, x.data(), nullptr)), y);
  }
  tg::nn::MLP model;
  tg::nn::Adam adam;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t batch;
};

}  // namespace tapegrad_bench
