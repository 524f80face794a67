// Second-order benchmarks: one Hessian-vector product against one gradient
// on the batch-64 MLP and on the scalar moons MLP, and a dense Hessian
// against the HVPs it is made of. Compare the pairs in one run:
//   bench --benchmark_filter='Gradient|Hvp|Hessian'
#include <benchmark/benchmark.h>
#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>
#include <tapegrad/threads.hpp>

#include <random>
#include <vector>

#include "mlp.hpp"
#include "moons.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tapegrad_bench::Fixture;
using tapegrad_bench::MoonsNet;

namespace {

// Forward and backward: the gradient with respect to every parameter.
void BM_MLPGradient(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    for (nn::Parameter* p : f.model.parameters()) p->zero_grad();
    loss.backward();
  }
}
// Forward and one H v with respect to every parameter (v fixed, random).
void BM_MLPHvp(benchmark::State& state) {
  tg::set_num_threads(static_cast<int>(state.range(1)));
  Fixture f(state.range(0));
  tg::Tape tape;
  std::vector<double> v;
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  for (nn::Parameter* p : f.model.parameters())
    for (std::int64_t i = 0; i < p->numel(); ++i) v.push_back(normal(rng) * 0.01);
  for (auto _ : state) {
    tg::Tensor loss = f.forward(tape);
    benchmark::DoNotOptimize(
        tg::hvp(loss, nn::parameter_leaves(tape, f.model.parameters()), v).data());
  }
}
BENCHMARK(BM_MLPGradient)
    ->ArgsProduct({{64}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MLPHvp)
    ->ArgsProduct({{64}, {1, 2}})
    ->ArgNames({"batch", "threads"})
    ->Unit(benchmark::kMicrosecond);

// The scalar moons MLP: record and sweep, against record and one H v.
void BM_MoonsGradient(benchmark::State& state) {
  MoonsNet net;
  for (auto _ : state) {
    tg::Scalar loss = net.loss();
    net.tape.backward(loss);
    benchmark::DoNotOptimize(net.params[0].grad());
  }
}
void BM_MoonsHvp(benchmark::State& state) {
  MoonsNet net;
  const std::vector<tg::Ref> params(net.params.begin(), net.params.end());
  std::vector<double> v(params.size());
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  for (double& e : v) e = normal(rng);
  for (auto _ : state) {
    tg::Scalar loss = net.loss();
    benchmark::DoNotOptimize(tg::hvp(loss, params, v).data());
  }
}
BENCHMARK(BM_MoonsGradient)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MoonsHvp)->Unit(benchmark::kMillisecond);

// A 100-input function with a dense Hessian: the extended Rosenbrock plus a
// coupling of every pair through (sum x)^2 and exp(mean x).
struct Dense100 {
  Dense100() {
    for (int i = 0; i < 100; ++i) x.push_back(tape.variable(0.01 * i - 0.3));
    tg::Scalar s = x[0];
    f = tape.constant(0.0);
    for (int i = 0; i + 1 < 100; ++i) {
      f = f + 100.0 * tg::pow(x[i + 1] - x[i] * x[i], 2.0) + tg::pow(1.0 - x[i], 2.0);
      s = s + x[i + 1];
    }
    f = f + s * s + tg::exp(s / 100.0);
    in.assign(x.begin(), x.end());
  }
  tg::Tape tape;
  std::vector<tg::Scalar> x;
  std::vector<tg::Ref> in;
  tg::Scalar f;
};
void BM_Hessian100(benchmark::State& state) {
  Dense100 d;
  for (auto _ : state) benchmark::DoNotOptimize(tg::hessian(d.f, d.in).data());
}
// 100 separate H v products on the same tape (what the Hessian must not exceed).
void BM_Hvp100Times(benchmark::State& state) {
  Dense100 d;
  std::vector<double> v(100);
  for (auto _ : state)
    for (int k = 0; k < 100; ++k) {
      std::fill(v.begin(), v.end(), 0.0);
      v[static_cast<std::size_t>(k)] = 1.0;
      benchmark::DoNotOptimize(tg::hvp(d.f, d.in, v).data());
    }
}
BENCHMARK(BM_Hessian100)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Hvp100Times)->Unit(benchmark::kMicrosecond);

}  // namespace
