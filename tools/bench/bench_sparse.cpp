// Sparse Jacobians and Hessians at a new point, and their set-up (pattern
// and coloring), on three structures of 10^4 variables, beside ADOL-C's
// patterns and compressed sweeps in the same run;
// the colors of both against ColPack's own colorings; and one VectorFunction
// evaluated from one and from two threads.
//   bench --benchmark_filter='Sparse|Concurrent'
#include <benchmark/benchmark.h>
#include <tapegrad/sparse.hpp>
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <memory>
#include <vector>

#ifdef TAPEGRAD_BENCH_ADOLC
#include <adolc/adolc.h>
#include <adolc/sparse/sparsedrivers.h>
#endif
#ifdef TAPEGRAD_BENCH_COLPACK
#include <ColPack/ColPackHeaders.h>
#endif

#include "problems.hpp"

namespace tg = tapegrad;

namespace {

using std::exp;
using std::sin;
using std::sqrt;
using tg::exp;
using tg::sin;
using tg::sqrt;

// The three structures (Which = 0, 1, 2), each as a vector function (its
// Jacobian) and a scalar objective (its Hessian), written once for any
// number type.
//   0 banded:    F_i = x_i^2 x_{i+1} - sin(x_{i-1}) + exp(0.1 x_{i+2})
//   1 arrowhead: F_0 = x_0^2, F_i = x_0 x_i + sin(x_i) (a dense column);
//                f = sum x_0 x_i + x_i^3 (a dense row and column)
//   2 grid:      the Bratu residual on a k x k grid (5-point stencil); f =
//                the minimal-surface area sum sqrt(1 + dx^2 + dy^2)
constexpr std::size_t kN = 10000, kGrid = 100;

template <class T>
std::vector<T> vector_problem(int which, std::span<const T> x) {
  const std::size_t n = x.size();
  std::vector<T> f;
  f.reserve(n);
  if (which == 0) {
    for (std::size_t i = 0; i < n; ++i) {
      T v = x[i] * x[i] * x[(i + 1) % n];
      if (i > 0) v = v - sin(x[i - 1]);
      if (i + 2 < n) v = v + exp(0.1 * x[i + 2]);
      f.push_back(v);
    }
  } else if (which == 1) {
    f.push_back(x[0] * x[0]);
    for (std::size_t i = 1; i < n; ++i) f.push_back(x[0] * x[i] + sin(x[i]));
  } else {
    const std::size_t k = kGrid;
    const double h2 = 1.0 / double((k + 1) * (k + 1));
    const auto at = [&](std::size_t i, std::size_t j) { return x[i * k + j]; };
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < k; ++j) {
        T v = 4.0 * at(i, j);
        if (i > 0) v = v - at(i - 1, j);
        if (i + 1 < k) v = v - at(i + 1, j);
        if (j > 0) v = v - at(i, j - 1);
        if (j + 1 < k) v = v - at(i, j + 1);
        f.push_back(v - h2 * exp(at(i, j)));
      }
  }
  return f;
}

template <class T>
T scalar_problem(int which, std::span<const T> x) {
  const std::size_t n = x.size();
  T s = 0.0 * x[0];
  if (which == 0) {
    for (std::size_t i = 0; i + 2 < n; ++i)
      s = s + x[i] * x[i] * x[i + 1] - sin(x[i]) * x[i + 2] + exp(0.1 * x[i + 1]);
  } else if (which == 1) {
    for (std::size_t i = 1; i < n; ++i) s = s + x[0] * x[i] + x[i] * x[i] * x[i];
  } else {
    const std::size_t k = kGrid;
    for (std::size_t i = 0; i + 1 < k; ++i)
      for (std::size_t j = 0; j + 1 < k; ++j) {
        const T dx = x[(i + 1) * k + j] - x[i * k + j], dy = x[i * k + j + 1] - x[i * k + j];
        s = s + sqrt(1.0 + dx * dx + dy * dy);
      }
  }
  return s;
}

std::vector<double> start(std::size_t n, double shift = 0.0) {
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = 0.5 + 0.3 * std::sin(0.7 * double(i) + shift);
  return x;
}

struct Ours {
  std::unique_ptr<tg::VectorFunction> F, f;
  std::unique_ptr<tg::SparseJacobian> J;
  std::unique_ptr<tg::SparseHessian> H;
};
Ours record_ours(int which, bool jac) {
  Ours o;
  const std::vector<double> x0 = start(kN);
  if (jac) {
    o.F = std::make_unique<tg::VectorFunction>(tg::VectorFunction::record(
        x0, [&](std::span<const tg::Scalar> x) { return vector_problem(which, x); }));
  } else {
    o.f = std::make_unique<tg::VectorFunction>(
        tg::VectorFunction::record(x0, [&](std::span<const tg::Scalar> x) {
          return std::vector<tg::Scalar>{scalar_problem(which, x)};
        }));
  }
  return o;
}

// Pattern and coloring, once (the recording excluded, as for the peer).
void BM_SparseJacobianSetup(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, true);
  for (auto _ : state) {
    tg::SparseJacobian J(*o.F);
    benchmark::DoNotOptimize(J.nnz());
    state.counters["colors"] = J.colors();
    state.counters["nnz"] = static_cast<double>(J.nnz());
  }
}
void BM_SparseJacobian(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, true);
  const tg::SparseJacobian J(*o.F);
  const std::vector<double> x = start(kN, 1.0);
  std::vector<double> v(J.nnz());
  for (auto _ : state) {
    J.evaluate(x, v);
    benchmark::DoNotOptimize(v.data());
  }
  state.counters["colors"] = J.colors();
  state.counters["by_rows"] = J.by_rows();
}
void BM_SparseHessianSetup(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, false);
  for (auto _ : state) {
    tg::SparseHessian H(*o.f);
    benchmark::DoNotOptimize(H.nnz());
    state.counters["colors"] = H.colors();
    state.counters["nnz"] = static_cast<double>(H.nnz());
  }
}
void BM_SparseHessian(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, false);
  const tg::SparseHessian H(*o.f);
  const std::vector<double> x = start(kN, 1.0), w{1.0};
  std::vector<double> v(H.nnz());
  for (auto _ : state) {
    H.evaluate(x, w, v);
    benchmark::DoNotOptimize(v.data());
  }
  state.counters["colors"] = H.colors();
}
// The gradient alone, the unit the Hessian's cost is measured in.
void BM_SparseGradient(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, false);
  const std::vector<double> x = start(kN, 1.0), w{1.0};
  std::vector<double> g(kN);
  for (auto _ : state) {
    o.f->vjp(x, w, g);
    benchmark::DoNotOptimize(g.data());
  }
}

#ifdef TAPEGRAD_BENCH_ADOLC
// ADOL-C. Debian's ADOL-C is built without ColPack, so its one-call
// drivers (sparse_jac, sparse_hess) refuse to run; what they do is built
// here from its own parts: jac_pat / hess_pat for the pattern, and at a new
// point the compressed sweeps fov_forward (J S) and hess_mat (H S) with the
// seed S of the same colors as ours, then the entries read off. The tape is
// kept in memory (buffers sized to hold it).
constexpr unsigned kBuf = 1u << 26;
void record_adolc(int which, bool jac, short tag) {
  const std::vector<double> x0 = start(kN);
  trace_on(tag, 0, kBuf, kBuf, kBuf, kBuf);
  std::vector<adouble> x(kN);
  for (std::size_t i = 0; i < kN; ++i) x[i] <<= x0[i];
  if (jac) {
    std::vector<adouble> f = vector_problem<adouble>(which, x);
    for (adouble& v : f) {
      double y;
      v >>= y;
    }
  } else {
    adouble f = scalar_problem<adouble>(which, x);
    double y;
    f >>= y;
  }
  trace_off();
}
// A dense n x p seed (ADOL-C's double**) from a coloring.
struct Seed {
  std::vector<double> data;
  std::vector<double*> rows;
  Seed(std::size_t n, std::size_t p) : data(n * p, 0.0), rows(n) {
    for (std::size_t i = 0; i < n; ++i) rows[i] = data.data() + i * p;
  }
};
void BM_SparseJacobianPatternAdolc(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  record_adolc(which, true, 11);
  const std::vector<double> x = start(kN, 1.0);
  int options[3] = {0, 0, 0};  // index domains, safe, forward or reverse by shape
  for (auto _ : state) {
    std::vector<unsigned int*> crs(kN, nullptr);
    jac_pat(11, static_cast<int>(kN), static_cast<int>(kN), x.data(), crs.data(), options);
    benchmark::DoNotOptimize(crs.data());
    for (unsigned int* r : crs) free(r);
  }
}
void BM_SparseHessianPatternAdolc(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  record_adolc(which, false, 13);
  const std::vector<double> x = start(kN, 1.0);
  for (auto _ : state) {
    std::vector<unsigned int*> crs(kN, nullptr);
    hess_pat(13, static_cast<int>(kN), x.data(), crs.data(), 0);
    benchmark::DoNotOptimize(crs.data());
    for (unsigned int* r : crs) free(r);
  }
}
void BM_SparseJacobianAdolc(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, true);
  const tg::SparseJacobian J(*o.F);
  if (J.by_rows()) {
    state.SkipWithError("ours goes by rows here; the peer's forward sweep would not compare");
    return;
  }
  record_adolc(which, true, 12);
  const std::size_t p = J.colors();
  Seed S(kN, p), Y(kN, p);
  for (std::size_t j = 0; j < kN; ++j) S.rows[j][J.coloring().color[j]] = 1.0;
  const std::vector<double> x = start(kN, 1.0);
  std::vector<double> y(kN), v(J.nnz());
  for (auto _ : state) {
    fov_forward(12, static_cast<int>(kN), static_cast<int>(kN), static_cast<int>(p), x.data(),
                S.rows.data(), y.data(), Y.rows.data());
    for (std::size_t k = 0; k < v.size(); ++k)
      v[k] = Y.rows[J.rows()[k]][J.coloring().color[J.cols()[k]]];
    benchmark::DoNotOptimize(v.data());
  }
  state.counters["colors"] = static_cast<double>(p);
}
void BM_SparseHessianAdolc(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours o = record_ours(which, false);
  const tg::SparseHessian H(*o.f);
  record_adolc(which, false, 14);
  const std::size_t p = H.colors();
  Seed S(kN, p), HS(kN, p);
  for (std::size_t j = 0; j < kN; ++j) S.rows[j][H.coloring().color[j]] = 1.0;
  // Where each entry is read: the same star-coloring rule as ours.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> from(H.nnz());
  {
    const tg::SparsityPattern& P = H.pattern();
    const auto& c = H.coloring().color;
    for (std::size_t k = 0; k < H.nnz(); ++k) {
      const std::uint32_t r = H.rows()[k], j = H.cols()[k];
      std::uint32_t same = 0;
      for (std::uint32_t q = P.row_start[r]; q < P.row_start[r + 1]; ++q)
        same += c[P.col[q]] == c[j];
      from[k] = same == 1 ? std::pair{r, c[j]} : std::pair{j, c[r]};
    }
  }
  std::vector<double> x = start(kN, 1.0), v(H.nnz());
  for (auto _ : state) {
    hess_mat(14, static_cast<int>(kN), static_cast<int>(p), x.data(), S.rows.data(),
             HS.rows.data());
    for (std::size_t k = 0; k < v.size(); ++k) v[k] = HS.rows[from[k].first][from[k].second];
    benchmark::DoNotOptimize(v.data());
  }
  state.counters["colors"] = static_cast<double>(p);
}
#endif

#ifdef TAPEGRAD_BENCH_COLPACK
// ColPack's own colors on the same patterns (smallest-last ordering, its
// best on these), beside ours: the counters of BM_SparseColors.
std::vector<unsigned int*> adolc_rows(const tg::SparsityPattern& p,
                                      std::vector<std::vector<unsigned int>>& store) {
  store.assign(p.rows, {});
  std::vector<unsigned int*> rows(p.rows);
  for (std::uint32_t r = 0; r < p.rows; ++r) {
    store[r].push_back(p.row_start[r + 1] - p.row_start[r]);
    for (std::uint32_t k = p.row_start[r]; k < p.row_start[r + 1]; ++k)
      store[r].push_back(p.col[k]);
    rows[r] = store[r].data();
  }
  return rows;
}
#endif
void BM_SparseColors(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  Ours j = record_ours(which, true), h = record_ours(which, false);
  const tg::SparseJacobian J(*j.F);
  const tg::SparseHessian H(*h.f);
  for (auto _ : state) benchmark::DoNotOptimize(J.colors());
  state.counters["ours_jac"] = J.colors();
  state.counters["ours_hess"] = H.colors();
#ifdef TAPEGRAD_BENCH_COLPACK
  std::vector<std::vector<unsigned int>> store;
  const tg::SparsityPattern& jp = J.pattern();
  std::vector<unsigned int*> jrows = adolc_rows(jp, store);
  const char* side = J.by_rows() ? "ROW_PARTIAL_DISTANCE_TWO" : "COLUMN_PARTIAL_DISTANCE_TWO";
  ColPack::BipartiteGraphPartialColoringInterface bj(
      SRC_MEM_ADOLC, jrows.data(), static_cast<int>(jp.rows), static_cast<int>(jp.cols));
  bj.PartialDistanceTwoColoring("SMALLEST_LAST", side);
  state.counters["colpack_jac"] = bj.GetVertexColorCount();
  std::vector<std::vector<unsigned int>> hstore;
  std::vector<unsigned int*> hrows = adolc_rows(H.pattern(), hstore);
  ColPack::GraphColoringInterface bh(SRC_MEM_ADOLC, hrows.data(), static_cast<int>(kN));
  bh.Coloring("SMALLEST_LAST", "STAR");
  state.counters["colpack_hess"] = bh.GetVertexColorCount();
#endif
}

// One recorded function, many threads: each thread evaluates the gradient
// of the Lax-Wendroff objective at its own points; items/s is the
// throughput of all threads together.
const tg::VectorFunction& shared_lw() {
  static const tg::VectorFunction F = [] {
    std::vector<double> q0(100);
    for (int i = 0; i < 100; ++i) q0[i] = 1.5 + 0.5 * std::sin(2 * 3.14159265358979 * i / 98.5);
    return tg::VectorFunction::record(q0, [](std::span<const tg::Scalar> x) {
      std::vector<tg::Scalar> q(x.begin(), x.end());
      return std::vector<tg::Scalar>{bench_problems::lax_wendroff(q, 200)};
    });
  }();
  return F;
}
void BM_ConcurrentGradient(benchmark::State& state) {
  const tg::VectorFunction& F = shared_lw();
  std::vector<double> x(F.inputs()), g(F.inputs());
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = 1.5 + 0.5 * std::sin(0.06 * double(i) + state.thread_index());
  const std::vector<double> w{1.0};
  for (auto _ : state) {
    F.vjp(x, w, g);
    benchmark::DoNotOptimize(g.data());
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

#define SPARSE_ARGS ->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)
BENCHMARK(BM_SparseJacobianSetup) SPARSE_ARGS;
BENCHMARK(BM_SparseJacobian) SPARSE_ARGS;
BENCHMARK(BM_SparseHessianSetup) SPARSE_ARGS;
BENCHMARK(BM_SparseHessian) SPARSE_ARGS;
BENCHMARK(BM_SparseGradient) SPARSE_ARGS;
BENCHMARK(BM_SparseColors) SPARSE_ARGS->Iterations(1);
#ifdef TAPEGRAD_BENCH_ADOLC
BENCHMARK(BM_SparseJacobianPatternAdolc) SPARSE_ARGS;
BENCHMARK(BM_SparseJacobianAdolc) SPARSE_ARGS;
BENCHMARK(BM_SparseHessianPatternAdolc) SPARSE_ARGS;
BENCHMARK(BM_SparseHessianAdolc) SPARSE_ARGS;
#endif
BENCHMARK(BM_ConcurrentGradient)->Threads(1)->Threads(2)->UseRealTime();
