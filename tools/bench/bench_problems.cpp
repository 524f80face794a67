// The replay benchmarks: gradients of det by minors, of the Lax-Wendroff
// stencil, of an add/mul chain and of a double pendulum (trig-heavy), each as
//   <problem>Doubles      the plain-double function (the ratio's base),
//   <problem>Retape       tapegrad: record the function, sweep (every call),
//   <problem>Replay       tapegrad: replay a recorded tape, sweep,
//   <problem>Optimized    tapegrad: the same after Function::optimize(),
//   <problem>RetapeReal / OptimizedReal   the same on tg::Real, which records
//                         each statement's linear part as weighted sums,
//   <problem>AdolcRetape / AdolcReplay   ADOL-C (Debian libadolc-dev), when built
// so one run gives every figure of docs/performance.md's replay table; and
// the scalar moons MLP replayed (BM_MoonsReplay, BM_MoonsOptimized).
#include <benchmark/benchmark.h>
#include <tapegrad/tapegrad.hpp>

#include <random>

#include "moons.hpp"
#include "problems.hpp"
#ifdef TAPEGRAD_BENCH_ADOLC
#include <adolc/adolc.h>
#include <adolc/checkpointing.h>
#endif

namespace tg = tapegrad;
namespace bp = bench_problems;

namespace bench_problems {
std::vector<double> det_matrix(int n) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(n));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> a(static_cast<std::size_t>(n * n));
  for (double& x : a) x = u(rng);
  return a;
}
std::vector<double> lw_initial() {
  std::vector<double> q(kNX);
  const double pi = std::acos(-1.0);
  for (int i = 0; i < kNX; ++i)
    q[static_cast<std::size_t>(i)] = 1.5 + 0.5 * std::sin(2 * pi * i / (kNX - 1.5));
  return q;
}
}  // namespace bench_problems

namespace {

constexpr int kChain = 1'000'000;

// The chain of bench_scalar.cpp as a function of two inputs.
template <class T>
T chain(const T& x, const T& y) {
  T acc = x;
  for (int i = 0; i < kChain; ++i) acc = (i & 1) ? acc + y : acc * y;
  return acc;
}

struct Problem {
  std::vector<double> x0;
  // Runs the problem on Scalars; returns the output.
  tg::Scalar (*record)(std::span<const tg::Scalar> in, int arg);
  double (*plain)(std::span<const double> in, int arg);
  // The same on Reals (statements recorded as weighted sums, real.hpp).
  tg::Scalar (*record_real)(std::span<const tg::Scalar> in, int arg);
};

tg::Scalar det_scalar(std::span<const tg::Scalar> in, int n) {
  return bp::det_minor(std::vector<tg::Scalar>(in.begin(), in.end()), n);
}
double det_double(std::span<const double> in, int n) {
  return bp::det_minor(std::vector<double>(in.begin(), in.end()), n);
}
tg::Scalar lw_scalar(std::span<const tg::Scalar> in, int steps) {
  std::vector<tg::Scalar> q(in.begin(), in.end());
  return bp::lax_wendroff(q, steps);
}
double lw_double(std::span<const double> in, int steps) {
  std::vector<double> q(in.begin(), in.end());
  return bp::lax_wendroff(q, steps);
}
tg::Scalar det_real(std::span<const tg::Scalar> in, int n) {
  return bp::det_minor(std::vector<tg::Real>(in.begin(), in.end()), n);
}
tg::Scalar lw_real(std::span<const tg::Scalar> in, int steps) {
  std::vector<tg::Real> q(in.begin(), in.end());
  return bp::lax_wendroff(q, steps);
}
tg::Scalar chain_real(std::span<const tg::Scalar> in, int) {
  return chain(tg::Real(in[0]), tg::Real(in[1]));
}
tg::Scalar chain_scalar(std::span<const tg::Scalar> in, int) { return chain(in[0], in[1]); }
template <class T, class In>
auto pendulum_of(std::span<const In> in, int steps) {
  return bp::double_pendulum<T>(in[0], in[1], in[2], in[3], steps);
}
tg::Scalar pendulum_scalar(std::span<const tg::Scalar> in, int steps) {
  return pendulum_of<tg::Scalar>(in, steps);
}
tg::Scalar pendulum_real(std::span<const tg::Scalar> in, int steps) {
  return pendulum_of<tg::Real>(in, steps);
}
double pendulum_double(std::span<const double> in, int steps) {
  return pendulum_of<double>(in, steps);
}
double chain_double(std::span<const double> in, int) { return chain(in[0], in[1]); }

Problem problem(int which, int arg) {
  switch (which) {
    case 0:
      return {bp::det_matrix(arg), det_scalar, det_double, det_real};
    case 1:
      return {bp::lw_initial(), lw_scalar, lw_double, lw_real};
    case 2:
      return {{1.0, 0.999999}, chain_scalar, chain_double, chain_real};
    default:
      return {bp::pendulum_initial(), pendulum_scalar, pendulum_double, pendulum_real};
  }
}

void counters(benchmark::State& state, double ops) {
  state.counters["ns_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * ops,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Nodes a recording of the problem makes (for ns per recorded op).
double nodes_of(const Problem& p, int arg) {
  tg::Function fn = tg::Function::record(p.x0, [&](auto in) { return p.record(in, arg); });
  return static_cast<double>(fn.tape().scalar_count());
}

template <int Which>
void BM_Doubles(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  const Problem p = problem(Which, arg);
  std::vector<double> x = p.x0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x.data());
    benchmark::DoNotOptimize(p.plain(x, arg));
  }
}

// Real = true: the problem on tg::Real (<problem>RetapeReal).
template <int Which, bool Real = false>
void BM_Retape(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  Problem p = problem(Which, arg);
  if constexpr (Real) p.record = p.record_real;
  tg::Tape tape;
  std::vector<tg::Scalar> in;
  std::vector<double> g(p.x0.size());
  for (auto _ : state) {
    tape.clear();
    in.clear();
    for (double v : p.x0) in.push_back(tape.variable(v));
    tg::Scalar out = p.record(in, arg);
    tape.backward(out);
    for (std::size_t k = 0; k < in.size(); ++k) g[k] = in[k].grad();
    benchmark::DoNotOptimize(g.data());
  }
  counters(state, nodes_of(p, arg));
}

template <int Which>
void BM_Replay(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  const Problem p = problem(Which, arg);
  tg::Function fn = tg::Function::record(p.x0, [&](auto in) { return p.record(in, arg); });
  std::vector<double> g(p.x0.size());
  for (auto _ : state) benchmark::DoNotOptimize(fn.gradient(p.x0, g));
  counters(state, static_cast<double>(fn.tape().scalar_count()));
}

// The same with the tape compiled by Function::optimize() (once, outside
// the loop).
template <int Which, bool Real = false>
void BM_Optimized(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  Problem p = problem(Which, arg);
  if constexpr (Real) p.record = p.record_real;
  tg::Function fn = tg::Function::record(p.x0, [&](auto in) { return p.record(in, arg); });
  const tg::OptimizeStats st = fn.optimize();
  std::vector<double> g(p.x0.size());
  for (auto _ : state) benchmark::DoNotOptimize(fn.gradient(p.x0, g));
  counters(state, static_cast<double>(fn.tape().scalar_count()));
  state.counters["statements"] = st.statements;
  state.counters["edges"] = st.edges;
  state.counters["blocks"] = st.blocks;
}

#ifdef TAPEGRAD_BENCH_ADOLC
// ADOL-C at its best: the whole tape kept in memory (buffers sized to hold
// it, so nothing goes to tape files), gradient() as its replay driver.
// Both of its configurations run: buffers sized to hold the whole tape
// (`Adolc...`), and ADOL-C's default buffers (`Adolc...Default`), which are
// cheaper to set up on small tapes; the faster one is the peer's figure.
template <int Which, bool BigBuffers = true>
void record_adolc(const Problem& p, int arg) {
  constexpr unsigned kBuf = 1u << 24;
  if constexpr (BigBuffers)
    trace_on(1, 0, kBuf, kBuf, kBuf, kBuf);
  else
    trace_on(1);
  std::vector<adouble> in(p.x0.size());
  for (std::size_t k = 0; k < in.size(); ++k) in[k] <<= p.x0[k];
  adouble out;
  if constexpr (Which == 0) {
    out = bp::det_minor(in, arg);
  } else if constexpr (Which == 1) {
    out = bp::lax_wendroff(in, arg);
  } else if constexpr (Which == 2) {
    out = chain(in[0], in[1]);
  } else {
    out = bp::double_pendulum<adouble>(in[0], in[1], in[2], in[3], arg);
  }
  double y;
  out >>= y;
  trace_off();
}
template <int Which, bool BigBuffers = true>
void BM_AdolcRetape(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  const Problem p = problem(Which, arg);
  std::vector<double> g(p.x0.size());
  for (auto _ : state) {
    record_adolc<Which, BigBuffers>(p, arg);
    gradient(1, static_cast<int>(p.x0.size()), p.x0.data(), g.data());
    benchmark::DoNotOptimize(g.data());
  }
}
template <int Which, bool BigBuffers = true>
void BM_AdolcReplay(benchmark::State& state) {
  const int arg = static_cast<int>(state.range(0));
  const Problem p = problem(Which, arg);
  std::vector<double> g(p.x0.size());
  record_adolc<Which, BigBuffers>(p, arg);
  for (auto _ : state) {
    gradient(1, static_cast<int>(p.x0.size()), p.x0.data(), g.data());
    benchmark::DoNotOptimize(g.data());
  }
}
#define PEER(which, name, args)                                                                    \
  BENCHMARK(BM_AdolcRetape<which>)->Name(name "AdolcRetape")->args->Unit(benchmark::kMillisecond); \
  BENCHMARK(BM_AdolcReplay<which>)->Name(name "AdolcReplay")->args->Unit(benchmark::kMillisecond); \
  BENCHMARK(BM_AdolcRetape<which, false>)                                                          \
      ->Name(name "AdolcRetapeDefault")                                                            \
      ->args->Unit(benchmark::kMillisecond);                                                       \
  BENCHMARK(BM_AdolcReplay<which, false>)                                                          \
      ->Name(name "AdolcReplayDefault")                                                            \
      ->args->Unit(benchmark::kMillisecond);
#else
#define PEER(which, name, args)
#endif

#define PROBLEM(which, name, args)                                                                 \
  BENCHMARK(BM_Doubles<which>)->Name(name "Doubles")->args->Unit(benchmark::kMillisecond);         \
  BENCHMARK(BM_Retape<which>)->Name(name "Retape")->args->Unit(benchmark::kMillisecond);           \
  BENCHMARK(BM_Replay<which>)->Name(name "Replay")->args->Unit(benchmark::kMillisecond);           \
  BENCHMARK(BM_Optimized<which>)->Name(name "Optimized")->args->Unit(benchmark::kMillisecond);     \
  BENCHMARK(BM_Retape<which, true>)->Name(name "RetapeReal")->args->Unit(benchmark::kMillisecond); \
  BENCHMARK(BM_Optimized<which, true>)                                                             \
      ->Name(name "OptimizedReal")                                                                 \
      ->args->Unit(benchmark::kMillisecond);                                                       \
  PEER(which, name, args)

// The scalar moons MLP step (BM_MoonsStep's network and loss) as a Function
// of its 337 parameters: replayed, and replayed after optimize().
template <bool Optimize>
void BM_MoonsFunction(benchmark::State& state) {
  tapegrad_bench::MoonsNet net;
  const tg::Scalar loss = net.loss();
  std::vector<double> p0;
  for (const tg::Scalar& s : net.params) p0.push_back(s.value());
  tg::Function fn(net.tape, net.params, loss);
  if constexpr (Optimize) {
    const tg::OptimizeStats st = fn.optimize();
    state.counters["statements"] = st.statements;
    state.counters["blocks"] = st.blocks;
  }
  std::vector<double> g(p0.size());
  for (auto _ : state) benchmark::DoNotOptimize(fn.gradient(p0, g));
}
BENCHMARK(BM_MoonsFunction<false>)->Name("BM_MoonsReplay")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MoonsFunction<true>)->Name("BM_MoonsOptimized")->Unit(benchmark::kMillisecond);

PROBLEM(0, "BM_DetMinor", DenseRange(5, 9))
PROBLEM(1, "BM_LaxWendroff", Arg(bp::kSteps))
PROBLEM(2, "BM_Chain", Arg(0))
PROBLEM(3, "BM_Pendulum", Arg(bp::kPendulumSteps))

}  // namespace

// ---- checkpointed loops (loop.hpp) ----
// The Lax-Wendroff stencil as a loop of single steps over a state of 100
// Scalars: its gradient on one tape (BM_LaxWendroffLoopTaped/steps) and
// checkpointed with s snapshots (BM_LaxWendroffLoopCheckpointed/steps/s),
// each reporting the tape's peak bytes and the steps run again.
#include <tapegrad/loop.hpp>
namespace {
void lw_loop_step(std::span<tg::Scalar> q, std::span<const tg::Scalar>, std::int64_t) {
  std::vector<tg::Real> r(q.begin(), q.end());
  bp::lax_wendroff(r, 1);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = r[i];
}
tg::Scalar lw_loop_objective(std::span<const tg::Scalar> q, std::span<const tg::Scalar>) {
  tg::Real s = q[0];
  for (std::size_t i = 1; i < q.size(); ++i) s += q[i];
  return tg::Real(0.1 * s);
}
void BM_LaxWendroffLoopTaped(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  tg::LoopGradient g;
  for (auto _ : state)
    g = tg::taped_gradient(q0, {}, state.range(0), lw_loop_step, lw_loop_objective);
  state.counters["tape_MB"] = static_cast<double>(g.peak_tape_bytes) / 1e6;
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
void BM_LaxWendroffLoopCheckpointed(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  tg::LoopGradient g;
  for (auto _ : state)
    g = tg::checkpointed_gradient(q0, {}, state.range(0), static_cast<int>(state.range(1)),
                                  lw_loop_step, lw_loop_objective);
  state.counters["tape_MB"] = static_cast<double>(g.peak_tape_bytes) / 1e6;
  state.counters["snapshots_MB"] = static_cast<double>(g.max_snapshots * 100 * 8) / 1e6;
  state.counters["advances_per_step"] =
      static_cast<double>(g.advances) / static_cast<double>(state.range(0));
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
// The same loop with its length found while it runs (online checkpointing):
// done() holds after `steps` steps, unknown to the schedule.
void BM_LaxWendroffLoopOnline(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  const std::int64_t n = state.range(0);
  const tg::LoopDone done = [n](std::span<const double>, std::int64_t steps) { return steps == n; };
  tg::LoopGradient g;
  for (auto _ : state)
    g = tg::checkpointed_gradient_online(q0, {}, static_cast<int>(state.range(1)), lw_loop_step,
                                         done, lw_loop_objective);
  state.counters["tape_MB"] = static_cast<double>(g.peak_tape_bytes) / 1e6;
  state.counters["snapshots_MB"] = static_cast<double>(g.max_snapshots * 100 * 8) / 1e6;
  state.counters["advances_per_step"] = static_cast<double>(g.advances) / static_cast<double>(n);
  state.counters["offline_advances_per_step"] =
      static_cast<double>(tg::checkpoint_advances(n, static_cast<int>(state.range(1)))) /
      static_cast<double>(n);
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
// The same checkpointed loop with the step recorded once and replayed.
void BM_LaxWendroffLoopReplayed(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  tg::LoopGradient g;
  for (auto _ : state)
    g = tg::checkpointed_gradient(q0, {}, state.range(0), static_cast<int>(state.range(1)),
                                  lw_loop_step, lw_loop_objective, {.replay = true});
  state.counters["advances_per_step"] =
      static_cast<double>(g.advances) / static_cast<double>(state.range(0));
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_LaxWendroffLoopReplayed)
    ->Args({10'000, 100})
    ->Args({10'000, 1000})
    ->Args({1'000'000, 1000})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
// H v through the same checkpointed loop (forward over reverse per step).
void BM_LaxWendroffLoopHvp(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  std::vector<double> v(q0.size(), 1.0);
  tg::LoopHvp h;
  for (auto _ : state)
    h = tg::checkpointed_hvp(q0, {}, state.range(0), static_cast<int>(state.range(1)), lw_loop_step,
                             lw_loop_objective, v, {});
  state.counters["tape_MB"] = static_cast<double>(h.peak_tape_bytes) / 1e6;
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
#ifdef TAPEGRAD_BENCH_ADOLC
// ADOL-C's own checkpointing (checkpointing.h: revolve inside a taped
// program) on the same loop: the step as an adouble and a double function,
// the loop taped with CP_Context, then gradient(). One gradient is the
// taping (the forward run that stores the checkpoints) plus the reverse.
int adolc_lw_step(int n, adouble* x) {
  std::vector<adouble> q(x, x + n);
  bp::lax_wendroff(q, 1);
  for (int i = 0; i < n; ++i) x[i] = q[static_cast<std::size_t>(i)];
  return 1;
}
int adolc_lw_step_double(int n, double* x) {
  std::vector<double> q(x, x + n);
  bp::lax_wendroff(q, 1);
  for (int i = 0; i < n; ++i) x[i] = q[static_cast<std::size_t>(i)];
  return 1;
}
void BM_LaxWendroffLoopAdolc(benchmark::State& state) {
  const std::vector<double> q0 = bp::lw_initial();
  const int nx = static_cast<int>(q0.size());
  std::vector<double> grad(q0.size());
  for (auto _ : state) {
    trace_on(21);
    std::vector<adouble> x(q0.size()), y(q0.size());
    for (int i = 0; i < nx; ++i) x[static_cast<std::size_t>(i)] <<= q0[static_cast<std::size_t>(i)];
    CP_Context cpc(adolc_lw_step);
    cpc.setDoubleFct(adolc_lw_step_double);
    cpc.setNumberOfSteps(static_cast<int>(state.range(0)));
    cpc.setNumberOfCheckpoints(static_cast<int>(state.range(1)));
    cpc.setTapeNumber(22);
    cpc.setDimensionXY(nx);
    cpc.setInput(x.data());
    cpc.setOutput(y.data());
    cpc.checkpointing();
    adouble f = y[0];
    for (int i = 1; i < nx; ++i) f += y[static_cast<std::size_t>(i)];
    f = 0.1 * f;
    double out;
    f >>= out;
    trace_off();
    gradient(21, nx, const_cast<double*>(q0.data()), grad.data());
    benchmark::DoNotOptimize(grad.data());
  }
  state.counters["us_per_step"] =
      benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_LaxWendroffLoopAdolc)
    ->Args({10'000, 100})
    ->Args({10'000, 1000})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(BM_LaxWendroffLoopHvp)->Args({10'000, 100})->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LaxWendroffLoopTaped)->Arg(10'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LaxWendroffLoopOnline)
    ->Args({10'000, 100})
    ->Args({10'000, 1000})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LaxWendroffLoopCheckpointed)
    ->Args({10'000, 100})
    ->Args({10'000, 1000})
    ->Args({1'000'000, 1000})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
}  // namespace
