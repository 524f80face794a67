// The 784-256-128-10 MLP's training step on real Fashion-MNIST batches, whose
// pixels are half exact zeros, with the first layer's weight kept either way
// (nn::WeightLayout): the benchmark behind the sparse products' figures in
// docs/performance.md. BM_MLPStep (bench_mlp.cpp) runs the same step on
// random batches without zeros. Skipped when the data set is not installed.
#include <benchmark/benchmark.h>
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <filesystem>
#include <optional>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

nn::Dataset* fashion() {
  static std::optional<nn::Dataset> data = []() -> std::optional<nn::Dataset> {
    if (!std::filesystem::exists(nn::kFashionMnistDir)) return std::nullopt;
    return nn::read_idx_folder(nn::kFashionMnistDir, true);
  }();
  return data ? &*data : nullptr;
}

// Args: batch, threads, first layer in_out (1) or out_in (0). Consecutive
// batches of the training set, in order, with their labels; Adam.
void BM_MLPStepFashion(benchmark::State& state) {
  nn::Dataset* d = fashion();
  if (!d) {
    state.SkipWithError("Fashion-MNIST is not installed");
    return;
  }
  const std::int64_t batch = state.range(0), batches = d->n / batch;
  tg::set_num_threads(static_cast<int>(state.range(1)));
  nn::MLP model({784, 256, 128, 10}, {.seed = 1,
                                      .first_layout = state.range(2) ? nn::WeightLayout::in_out
                                                                     : nn::WeightLayout::out_in});
  nn::Adam adam(model.parameters(), {});
  tg::Tape tape;
  std::int64_t b = 0;
  for (auto _ : state) {
    tape.clear();
    tg::TapeScope scope(tape);
    const std::size_t at = static_cast<std::size_t>(b * batch);
    tg::Tensor loss = nn::cross_entropy(
        model(tg::external({batch, 784}, tg::DType::f32, d->x.data() + at * 784, nullptr)),
        std::span<const std::int32_t>(d->y.data() + at, static_cast<std::size_t>(batch)));
    adam.zero_grad();
    loss.backward();
    adam.step();
    b = (b + 1) % batches;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_MLPStepFashion)
    ->ArgsProduct({{64}, {1, 2}, {0, 1}})
    ->ArgNames({"batch", "threads", "in_out"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
