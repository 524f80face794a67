// Tensor benchmarks: one training step of the 784-256-128-10 MLP (forward,
// loss, backward, Adam) at several batch sizes, and its parts.
#include <benchmark/benchmark.h>
#include <tapegrad/nn.hpp>
#include <tapegrad/ops.hpp>
#include <tapegrad/threads.hpp>

#include <random>
#include <vector>

#include "mlp.hpp"

namespace tg = tapegrad;

namespace {
using tapegrad_bench::Fixture;

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
    ->ArgsProduct({{1, 32, 64, 256}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

// The same step with the Adam update fused into the backward sweep (each
// parameter updated as soon as its gradient is final; nn::FusedUpdate).
void BM_MLPStepFused(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  tg::nn::FusedUpdate fused(f.adam, tape);
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    f.adam.zero_grad();
    fused.begin();
    loss.backward();
    fused.finish();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MLPStepFused)
    ->ArgsProduct({{1, 32, 64, 256}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

// One training step (forward, loss, backward, Adam) of an MLP with every
// layer plain or checkpointed (MLPOptions::checkpoint_layers): time, and the
// step's tape peak and the recompute's scratch peak as counters. Layers:
// the Fashion-MNIST MLP (3 layers), and a deep one of 8 layers of 512.
void BM_CheckpointLayers(benchmark::State& state) {
  const bool deep = state.range(0) == 1, ck = state.range(2) == 1;
  const std::int64_t batch = state.range(1);
  tg::set_num_threads(1);
  std::vector<std::int64_t> sizes{784, 256, 128, 10};
  if (deep) sizes = {784, 512, 512, 512, 512, 512, 512, 512, 10};
  tg::nn::MLP model(sizes, {.seed = 1, .checkpoint_layers = ck});
  tg::nn::Adam adam(model.parameters(), {});
  std::vector<float> x(static_cast<std::size_t>(batch * 784));
  std::vector<std::int32_t> y(static_cast<std::size_t>(batch));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0, 1);
  for (float& v : x) v = u(rng);
  for (auto& v : y) v = static_cast<std::int32_t>(rng() % 10);
  tg::Tape tape;
  std::size_t peak = 0;
  for (auto _ : state) {
    tape.clear();
    tape.reset_peak();
    tg::TapeScope s(tape);
    tg::Tensor loss = tg::nn::cross_entropy(
        model(tg::external({batch, 784}, tg::DType::f32, x.data(), nullptr)), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
    peak = std::max(peak, tape.memory().peak_bytes);
  }
  state.counters["tape_MiB"] = static_cast<double>(peak) / (1 << 20);
  state.counters["recompute_MiB"] = static_cast<double>(tg::checkpoint_scratch_peak()) / (1 << 20);
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_CheckpointLayers)
    ->ArgsProduct({{0, 1}, {64, 1024}, {0, 1}})
    ->ArgNames({"deep", "batch", "checkpoint"})
    ->Unit(benchmark::kMillisecond);

// Training steps through nn::Trainer (one epoch of 20 batches per
// iteration, random data), with the batch split over `replicas` threads.
void BM_TrainerStep(benchmark::State& state) {
  const std::int64_t batch = state.range(0), replicas = state.range(1), steps = 20;
  tg::set_num_threads(2);
  Fixture f(batch * steps);
  tg::nn::Dataset d{.x = f.x, .y = f.y, .n = batch * steps, .features = 784, .classes = 10};
  tg::nn::Trainer t(f.model, f.adam, {.epochs = 1, .batch_size = batch, .replicas = replicas});
  for (auto _ : state) {
    t.set_epochs_done(0);
    t.fit(d);
  }
  state.SetItemsProcessed(state.iterations() * batch * steps);
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * steps) * 1e-6,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TrainerStep)
    ->ArgsProduct({{32, 64, 128, 256}, {1, 2}})
    ->ArgNames({"batch", "replicas"})
    ->Unit(benchmark::kMillisecond);

// The same step with SGD and momentum 0.9 (it must not be slower than Adam,
// which moves more memory per parameter).
void BM_MLPStepSGDMomentum(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::nn::SGD sgd(f.model.parameters(), {.lr = 0.01, .momentum = 0.9});
  tg::Tape tape;
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MLPStepSGDMomentum)
    ->ArgsProduct({{1, 32, 64, 256}, {1, 2}})
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

// The Adam update alone (235,146 parameters), on 1 or 2 threads.
void BM_AdamStep(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(0)));
  Fixture f(1);
  for (auto _ : state) f.adam.step();
  state.SetItemsProcessed(state.iterations() * f.model.parameter_count());
}
BENCHMARK(BM_AdamStep)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMicrosecond);

// Batch gathering as the trainer does it: an epoch of shuffled batches of 64
// rows from a data set the size of Fashion-MNIST's training set (60,000 x
// 784 floats, 188 MB: far larger than the caches), per batch.
void BM_BatchGather(benchmark::State& state) {
  tg::nn::Dataset d{.n = 60000, .features = 784, .classes = 10};
  d.x.assign(static_cast<std::size_t>(d.n * d.features), 0.5f);
  d.y.assign(static_cast<std::size_t>(d.n), 1);
  tg::nn::Batches b(d, state.range(0), 1);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t epoch = 0, batches = 0;
  b.start_epoch(epoch);
  for (auto _ : state) {
    if (!b.next(x, y)) {
      b.start_epoch(++epoch);
      b.next(x, y);
    }
    benchmark::DoNotOptimize(x.data());
    ++batches;
  }
  state.SetItemsProcessed(batches * state.range(0));
}
BENCHMARK(BM_BatchGather)->Arg(64)->ArgName("batch")->Unit(benchmark::kMicrosecond);

}  // namespace

namespace {

// The matrix-product floor of one training step: exactly the products that
// BM_MLPStep does (3 forward, 3 weight gradients, 2 input gradients; the
// input batch takes none), with the same backend, thread count and
// write-first beta = 0, and nothing else. A training step's time divided by
// this is "x of the product floor".
void BM_MLPProductFloor(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  tg::set_num_threads(static_cast<int>(state.range(1)));
  const std::int64_t sizes[] = {784, 256, 128, 10};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  const auto filled = [&](std::int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
  };
  // act[l]: layer l's input (batch x sizes[l]); w[l]: sizes[l+1] x sizes[l].
  std::vector<std::vector<float>> act, w, gw, gact;
  for (int l = 0; l < 4; ++l) {
    act.push_back(filled(batch * sizes[l]));
    gact.push_back(filled(batch * sizes[l]));
  }
  for (int l = 0; l < 3; ++l) {
    w.push_back(filled(sizes[l + 1] * sizes[l]));
    gw.push_back(filled(sizes[l + 1] * sizes[l]));
  }
  for (auto _ : state) {
    for (int l = 0; l < 3; ++l)  // y = x w^T
      tg::gemm(false, true, batch, sizes[l + 1], sizes[l], 1.0f, act[l].data(), sizes[l],
               w[l].data(), sizes[l], 0.0f, act[l + 1].data(), sizes[l + 1]);
    for (int l = 2; l >= 0; --l) {
      const float* g = gact[l + 1].data();  // dw = g^T x, dx = g w (not for the input)
      tg::gemm(true, false, sizes[l + 1], sizes[l], batch, 1.0f, g, sizes[l + 1], act[l].data(),
               sizes[l], 0.0f, gw[l].data(), sizes[l]);
      if (l > 0)
        tg::gemm(false, false, batch, sizes[l], sizes[l + 1], 1.0f, g, sizes[l + 1], w[l].data(),
                 sizes[l], 0.0f, gact[l].data(), sizes[l]);
    }
    benchmark::DoNotOptimize(gw[0].data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_MLPProductFloor)
    ->ArgsProduct({{1, 32, 64, 256}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
