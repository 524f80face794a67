// Tensor benchmarks: one training step of the 784-256-128-10 MLP (forward,
// loss, backward, Adam) at several batch sizes, and its parts.
#include <benchmark/benchmark.h>
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <random>
#include <vector>

namespace tg = tapegrad;

namespace {

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

void BM_MLPStep(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    f.adam.zero_grad();
    loss.backward();
    f.adam.step();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MLPStep)
    ->ArgsProduct({{1, 64, 256}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

void BM_MLPForward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  for (auto _ : state) benchmark::DoNotOptimize(f.forward(tape).value(0));
}
BENCHMARK(BM_MLPForward)
    ->ArgsProduct({{1, 64}, {2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

void BM_MLPForwardBackward(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    f.adam.zero_grad();
    loss.backward();
  }
}
BENCHMARK(BM_MLPForwardBackward)
    ->ArgsProduct({{1, 64}, {2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

void BM_AdamStep(benchmark::State& state) {
  Fixture f(1);
  for (auto _ : state) f.adam.step();
  state.SetItemsProcessed(state.iterations() * f.model.parameter_count());
}
BENCHMARK(BM_AdamStep)->Unit(benchmark::kMicrosecond);

}  // namespace
