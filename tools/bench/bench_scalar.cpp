// Scalar tape benchmarks: the cost of recording and sweeping one op, and one
// training step of a scalar MLP built neuron by neuron.
#include <benchmark/benchmark.h>
#include <tapegrad/tapegrad.hpp>

#include "moons.hpp"

#include <cmath>
#include <random>
#include <vector>

namespace tg = tapegrad;
using tapegrad_bench::make_moons;

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

// A 2-16-16-1 ReLU MLP of Scalars, neuron by neuron, on 100 moons points with
// the max-margin loss: about 65,000 nodes per step. One step = forward, loss,
// backward, SGD update of the 337 parameters.
void BM_MoonsStep(benchmark::State& state) {
  std::vector<double> xs, ys;
  make_moons(100, xs, ys);
  tg::Tape tape;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(-1, 1);
  const int sizes[] = {2, 16, 16, 1};
  std::vector<tg::Scalar> params;
  for (int l = 0; l < 3; ++l)
    for (int o = 0; o < sizes[l + 1]; ++o)
      for (int i = 0; i <= sizes[l]; ++i)
        params.push_back(tape.variable(u(rng) / std::sqrt(sizes[l])));
  const tg::Mark mark = tape.mark();
  std::size_t nodes = 0;
  std::vector<tg::Scalar> in, out;
  for (auto _ : state) {
    tape.rewind(mark);
    tape.zero_grad();
    tg::Scalar loss = tape.constant(0.0);
    for (int p = 0; p < 100; ++p) {
      in = {tape.constant(xs[2 * p]), tape.constant(xs[2 * p + 1])};
      std::size_t k = 0;
      for (int l = 0; l < 3; ++l) {
        out.clear();
        for (int o = 0; o < sizes[l + 1]; ++o) {
          tg::Scalar acc = params[k + static_cast<std::size_t>(sizes[l])];  // bias
          for (int i = 0; i < sizes[l]; ++i)
            acc = acc + params[k + i] * in[static_cast<std::size_t>(i)];
          k += static_cast<std::size_t>(sizes[l]) + 1;
          out.push_back(l < 2 ? tg::relu(acc) : acc);
        }
        std::swap(in, out);
      }
      loss = loss + tg::relu(1.0 - ys[static_cast<std::size_t>(p)] * in[0]);
    }
    loss = loss / 100.0;
    tape.backward(loss);
    for (tg::Scalar& w : params) w.set_value(w.value() - 0.05 * w.grad());
    nodes = tape.scalar_count() - mark.scalars;
  }
  state.counters["nodes"] = static_cast<double>(nodes);
}
BENCHMARK(BM_MoonsStep)->Unit(benchmark::kMillisecond);

}  // namespace
