// C = beta C + A^T B when A or B has many exact zeros.
//
// This is the weight gradient of a linear layer: dW = G^T X for a weight
// stored (Out, In), dW = X^T G for one stored (In, Out). Its input X is a
// data batch (Fashion-MNIST images are half black background, exact zeros)
// or a ReLU's output, and G, the gradient behind a ReLU, is about half zeros
// too. A dense product spends half its multiply-adds on them. Here, with S
// the sparse operand and D the dense one, every pair of S's columns (k, k+1)
// gets the list of rows b where either is nonzero, and the two rows (or
// columns) of C they make are summed over that list only:
//
//   C[j, k] (or C[k, j]) = sum over b in list(k, k+1) of D[b, j] S[b, k]
//
// Pairs, not single columns: each row of D loaded from cache feeds two
// multiply-adds, which keeps the loop bound by arithmetic rather than by
// loads. Neighbouring pixels are zero together, so a pair's list is only a
// little longer than either column's (54% of the rows against 49% on
// Fashion-MNIST at batch 64).
//
// Results equal the dense product's up to the order of the sums, the same
// on any number of threads; a skipped zero contributes nothing even where
// the other operand holds an infinity or NaN.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/kernels.hpp"

#include "core/sparse_lists.hpp"

#if defined(__AVX512F__)
#include <omp.h>
#endif

namespace tapegrad::detail {

namespace {
std::atomic<std::uint64_t> g_sparse_products{0};
}  // namespace

#if defined(__AVX512F__)
namespace {

constexpr std::int64_t kChunk = 128;     // columns of C per kernel call: 8 vectors of 16
constexpr double kTransposedCost = 1.3;  // per nonzero, against the direct kernel

// Per pair of B's columns: the rows where either is nonzero and both values.
// Pair q's list starts at q * stride; count[q] entries.
struct PairLists {
  std::int64_t stride = 0;
  std::vector<std::int32_t> row, count;
  std::vector<float> v0, v1;
  std::vector<float> bt;  // B transposed, n rows of k, for the build
};

// Builds the lists of column pairs in [c0, c0 + 16) from B (k x n).
void build_block(const float* b, std::int64_t ldb, std::int64_t k, std::int64_t c0, PairLists& L) {
  float* bt = L.bt.data() + c0 * L.stride;  // rows c0..c0+15 of B^T, length k
  std::int64_t r = 0;
  for (; r + 16 <= k; r += 16) transpose16(b + r * ldb + c0, ldb, bt + r, L.stride);
  for (; r < k; ++r)
    for (int c = 0; c < 16; ++c) bt[c * L.stride + r] = b[r * ldb + c0 + c];
  for (int c = 0; c < 16; c += 2) {
    const std::int64_t q = (c0 + c) / 2, at = q * L.stride;
    L.count[static_cast<std::size_t>(q)] =
        pair_list(bt + c * L.stride, bt + (c + 1) * L.stride, k, L.row.data() + at,
                  L.v0.data() + at, L.v1.data() + at);
  }
}

// Sparse columns c0..c0+15 against dense columns j0..j0+16Z: eight column
// pairs summed over their lists. Into C's rows c0..c0+15 straight (Direct:
// C = S^T D) or through a 16 x 128 tile transposed into C (C = D^T S).
template <int Z, bool Direct>
void kernel_block(const PairLists& L, const float* a, std::int64_t lda, std::int64_t j0,
                  std::int64_t c0, float beta, float* c, std::int64_t ldc) {
  alignas(64) float tile[Direct ? 1 : 16 * kChunk];
  const auto put = [beta](float* d, __m512 v) {
    _mm512_storeu_ps(d, beta == 0.0f ? v : _mm512_add_ps(_mm512_loadu_ps(d), v));
  };
  for (int pc = 0; pc < 8; ++pc) {
    const std::int64_t q = c0 / 2 + pc;
    const std::int32_t* row = L.row.data() + q * L.stride;
    const float* v0 = L.v0.data() + q * L.stride;
    const float* v1 = L.v1.data() + q * L.stride;
    __m512 s0[Z], s1[Z];
    for (int z = 0; z < Z; ++z) s0[z] = s1[z] = _mm512_setzero_ps();
    const std::int32_t n = L.count[static_cast<std::size_t>(q)];
    for (std::int32_t p = 0; p < n; ++p) {
      const float* ar = a + row[p] * lda + j0;
      const __m512 x0 = _mm512_set1_ps(v0[p]), x1 = _mm512_set1_ps(v1[p]);
      for (int z = 0; z < Z; ++z) {
        __m512 av = _mm512_loadu_ps(ar + 16 * z);
        // Keep the row in a register: GCC would otherwise fold the load
        // into both multiply-adds and load it twice.
        asm("" : "+v"(av));
        s0[z] = _mm512_fmadd_ps(x0, av, s0[z]);
        s1[z] = _mm512_fmadd_ps(x1, av, s1[z]);
      }
    }
    for (int z = 0; z < Z; ++z) {
      if constexpr (Direct) {
        put(c + (c0 + 2 * pc) * ldc + j0 + 16 * z, s0[z]);
        put(c + (c0 + 2 * pc + 1) * ldc + j0 + 16 * z, s1[z]);
      } else {
        _mm512_store_ps(tile + (2 * pc) * kChunk + 16 * z, s0[z]);
        _mm512_store_ps(tile + (2 * pc + 1) * kChunk + 16 * z, s1[z]);
      }
    }
  }
  if constexpr (!Direct) {
    for (int z = 0; z < Z; ++z) {
      float* dst = c + (j0 + 16 * z) * ldc + c0;
      if (beta == 0.0f) {
        transpose16(tile + 16 * z, kChunk, dst, ldc);
      } else {
        alignas(64) float t[256];
        transpose16(tile + 16 * z, kChunk, t, 16);
        for (int r = 0; r < 16; ++r) put(dst + r * ldc, _mm512_load_ps(t + 16 * r));
      }
    }
  }
}

// kernel_block<Z, Direct> for Z = 1..8, so a run-time vector count picks its kernel.
using BlockFn = void (*)(const PairLists&, const float*, std::int64_t, std::int64_t, std::int64_t,
                         float, float*, std::int64_t);
template <bool Direct, std::size_t... Z>
constexpr std::array<BlockFn, sizeof...(Z)> block_kernels(std::index_sequence<Z...>) {
  return {&kernel_block<static_cast<int>(Z) + 1, Direct>...};
}
constexpr auto kTransposedKernels = block_kernels<false>(std::make_index_sequence<kChunk / 16>{});
constexpr auto kDirectKernels = block_kernels<true>(std::make_index_sequence<kChunk / 16>{});

}  // namespace

void count_sparse_product() { g_sparse_products.fetch_add(1, std::memory_order_relaxed); }

// C = beta C + A^T B (A k x m, B k x n) summed over the nonzeros of whichever
// operand has more exact zeros. With B sparse, A is the dense side and a
// tile is transposed into C (kernel_block<Z, false>); with A sparse, B is
// the dense side and C's rows are written straight (kernel_block<Z, true>).
bool gemm_tn_sparse(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                    std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                    std::int64_t ldc) {
  if (m % 16 != 0 || n % 16 != 0 || k < 16 || m * n * k < kSparseMinWork ||
      (beta != 0.0f && beta != 1.0f) || k > INT32_MAX - 16)
    return false;
  thread_local PairLists lists;
  PairLists& L = lists;  // a plain reference, shared by the threads below
  L.stride = k + 16;
  const std::int64_t widest = std::max(m, n);  // lists for either operand's columns
  const auto cells = static_cast<std::size_t>(widest / 2 * L.stride);
  if (L.row.size() < cells) {
    L.row.resize(cells);
    L.v0.resize(cells);
    L.v1.resize(cells);
  }
  if (L.bt.size() < static_cast<std::size_t>(widest * L.stride))
    L.bt.resize(static_cast<std::size_t>(widest * L.stride));
  L.count.resize(static_cast<std::size_t>(widest / 2));
  const int threads = num_threads();
  std::atomic<std::int64_t> zeros_a{0}, zeros_b{0};
  bool sparse = false;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    // Every thread counts zeros in its share of both operands' rows; all of
    // them then take the same decision.
    zeros_a.fetch_add(count_zeros(a, lda, k * t / nt, k * (t + 1) / nt, m),
                      std::memory_order_relaxed);
    zeros_b.fetch_add(count_zeros(b, ldb, k * t / nt, k * (t + 1) / nt, n),
                      std::memory_order_relaxed);
#pragma omp barrier
    const double fa = static_cast<double>(zeros_a.load(std::memory_order_relaxed)) /
                      static_cast<double>(k * m),
                 fb = static_cast<double>(zeros_b.load(std::memory_order_relaxed)) /
                      static_cast<double>(k * n);
    if (std::max(fa, fb) >= kSparseMinZeros) {
      // A the sparse one, unless B is clearly sparser: the direct kernel
      // needs no transposes, and writes C's rows in contiguous halves, the
      // halves the optimiser update takes. Per nonzero, the transposing
      // kernel measured about 1.3 times its cost (docs/performance.md).
      const bool direct = (1 - fa) <= kTransposedCost * (1 - fb);
      const float* d = direct ? b : a;
      const float* s = direct ? a : b;
      const std::int64_t ldd = direct ? ldb : lda, lds = direct ? lda : ldb;
      const std::int64_t dn = direct ? n : m, blocks = (direct ? m : n) / 16;
      const auto& kernels = direct ? kDirectKernels : kTransposedKernels;
      // Each thread builds the lists of its own columns of the sparse
      // operand and uses them at once: lists built by the other thread
      // would have to cross between the cores' caches.
      for (std::int64_t cb = blocks * t / nt; cb < blocks * (t + 1) / nt; ++cb) {
        build_block(s, lds, k, cb * 16, L);
        for (std::int64_t j0 = 0; j0 < dn; j0 += kChunk)
          kernels[static_cast<std::size_t>(std::min(kChunk, dn - j0) / 16 - 1)](
              L, d, ldd, j0, cb * 16, beta, c, ldc);
      }
      if (t == 0) sparse = true;
    }
  }
  if (!sparse) return false;
  count_sparse_product();
  return true;
}

#else  // no AVX-512: every product stays dense

bool gemm_tn_sparse(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                    const float*, std::int64_t, float, float*, std::int64_t) {
  return false;
}
void count_sparse_product() { g_sparse_products.fetch_add(1, std::memory_order_relaxed); }

#endif

}  // namespace tapegrad::detail

std::uint64_t tapegrad::sparse_gemm_count() {
  return detail::g_sparse_products.load(std::memory_order_relaxed);
}
