// Scalar tape benchmarks: the cost of recording and sweeping one op, and one
// training step of a scalar MLP built neuron by neuron.
#include <benchmark/benchmark.h>
#include <tapegrad/tapegrad.hpp>

#include "moons.hpp"

#include <cmath>
#include <random>
#include <vector>

namespace tg = tapegrad;
using tapegrad_bench::MoonsNet;

namespace {

constexpr int kChain = 1'000'000;

// acc = acc * y, acc = acc + y, ... alternating; then one backward sweep.
void BM_ChainAddMul(benchmark::State& state) {
  tg::Tape tape;
  double bytes = 0;
  for (auto _ : state) {
    tape.clear();
    tg::Scalar x = tape.variable(1.0), y = tape.variable(0.999999);
    tg::Scalar acc = x;
    for (int i = 0; i < kChain; ++i) acc = (i & 1) ? acc + y : acc * y;
    tape.backward(acc);
    benchmark::DoNotOptimize(x.grad());
    bytes = static_cast<double>(tape.scalar_bytes()) / kChain;
  }
  state.SetItemsProcessed(state.iterations() * kChain);
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kChain,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bytes_per_op"] = bytes;
}
BENCHMARK(BM_ChainAddMul)->Unit(benchmark::kMillisecond);

// The same chain on plain doubles with its derivative by hand, for the ratio.
void BM_ChainAddMulDoubles(benchmark::State& state) {
  std::vector<double> partial(kChain);
  for (auto _ : state) {
    double acc = 1.0, y = 0.999999;
    benchmark::DoNotOptimize(y);
    for (int i = 0; i < kChain; ++i) {
      partial[static_cast<std::size_t>(i)] = (i & 1) ? 1.0 : y;
      acc = (i & 1) ? acc + y : acc * y;
    }
    double g = 1.0;
    for (int i = kChain; i-- > 0;) g *= partial[static_cast<std::size_t>(i)];
    benchmark::DoNotOptimize(acc);
    benchmark::DoNotOptimize(g);
  }
  state.SetItemsProcessed(state.iterations() * kChain);
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kChain,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ChainAddMulDoubles)->Unit(benchmark::kMillisecond);

// A chain with tanh every third op.
void BM_ChainTanh(benchmark::State& state) {
  tg::Tape tape;
  for (auto _ : state) {
    tape.clear();
    tg::Scalar x = tape.variable(0.5), y = tape.variable(0.7);
    tg::Scalar acc = x;
    for (int i = 0; i < kChain; ++i) {
      switch (i % 3) {
        case 0:
          acc = acc * y;
          break;
        case 1:
          acc = acc + y;
          break;
        default:
          acc = tg::tanh(acc);
      }
    }
    tape.backward(acc);
    benchmark::DoNotOptimize(x.grad());
  }
  state.SetItemsProcessed(state.iterations() * kChain);
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kChain,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ChainTanh)->Unit(benchmark::kMillisecond);

// One training step of the scalar moons MLP (moons.hpp): forward, loss,
// backward, SGD update of the 337 parameters.
void BM_MoonsStep(benchmark::State& state) {
  MoonsNet net;
  std::size_t nodes = 0;
  for (auto _ : state) {
    tg::Scalar loss = net.loss();
    net.tape.backward(loss);
    for (tg::Scalar& w : net.params) w.set_value(w.value() - 0.05 * w.grad());
    nodes = net.tape.scalar_count() - net.mark.scalars;
  }
  state.counters["nodes"] = static_cast<double>(nodes);
}
BENCHMARK(BM_MoonsStep)->Unit(benchmark::kMillisecond);

}  // namespace
