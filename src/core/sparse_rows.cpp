// C = beta C + A B when A has many exact zeros.
//
// This is the forward product of a linear layer whose weight is stored
// (In, Out): Y = X W, with X a data batch (Fashion-MNIST images are half
// black background) or the output of a ReLU. Row r of C is a sum of B's rows
// weighted by row r of A, so only A's nonzeros need a row of B:
//
//   C[r, :] = sum over i with A[r, i] != 0 of A[r, i] B[i, :]
//
// Rows of A go in pairs (r, r+1) with one list of the columns where either is
// nonzero, so each row of B read from cache feeds two multiply-adds (see
// sparse_gemm.cpp for the same idea over columns). The inner dimension is
// cut in two fixed halves whose sums are added (see gemm_nn_sparse_a), so
// the same bits come out on any number of threads.
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

#if defined(__AVX512F__)
namespace {

constexpr std::int64_t kChunk = 128;  // columns of C per kernel call: 8 vectors of 16

// One list per pair of A's rows: the columns where either row is nonzero and
// both values. Pair q's list starts at q * stride.
//
// One union list, not three (both nonzero / only the first / only the
// second): the loop is bound by reading B's rows from L2 as much as by the
// multiply-adds, so a row of B feeding only one of them costs nearly as much
// as one feeding both. Split lists measured 10% slower (docs/performance.md).
struct RowPairs {
  std::int64_t stride = 0;
  std::vector<std::int32_t> col, count;
  std::vector<float> v0, v1;
  void reserve(std::int64_t pairs, std::int64_t k) {
    stride = k + 16;  // 16 spare slots: every store writes a whole vector
    const auto cells = static_cast<std::size_t>(pairs * stride);
    if (col.size() < cells) col.resize(cells), v0.resize(cells), v1.resize(cells);
    count.resize(static_cast<std::size_t>(pairs));
  }
};

// The list of rows r0 and r1 (r1 == nullptr for a last, unpaired row).
void build_pair(const float* r0, const float* r1, std::int64_t k, std::int64_t q, RowPairs& L) {
  const std::int64_t at = q * L.stride;
  L.count[static_cast<std::size_t>(q)] =
      pair_list(r0, r1, k, L.col.data() + at, L.v0.data() + at, L.v1.data() + at);
}

// Rows r and r+1 (only r when c1 is null) of C, columns j0..j0+16Z.
template <int Z>
void kernel_pair(const RowPairs& L, std::int64_t q, const float* b, std::int64_t ldb,
                 std::int64_t j0, float beta, float* c0, float* c1) {
  const std::int32_t* col = L.col.data() + q * L.stride;
  const float* v0 = L.v0.data() + q * L.stride;
  const float* v1 = L.v1.data() + q * L.stride;
  __m512 s0[Z], s1[Z];
  for (int z = 0; z < Z; ++z) s0[z] = s1[z] = _mm512_setzero_ps();
  const std::int32_t n = L.count[static_cast<std::size_t>(q)];
  for (std::int32_t p = 0; p < n; ++p) {
    const float* br = b + col[p] * ldb + j0;
    const __m512 x0 = _mm512_set1_ps(v0[p]), x1 = _mm512_set1_ps(v1[p]);
    for (int z = 0; z < Z; ++z) {
      __m512 bv = _mm512_loadu_ps(br + 16 * z);
      asm("" : "+v"(bv));  // one load feeding both multiply-adds, not two folded loads
      s0[z] = _mm512_fmadd_ps(x0, bv, s0[z]);
      s1[z] = _mm512_fmadd_ps(x1, bv, s1[z]);
    }
  }
  for (int z = 0; z < Z; ++z) {
    float* d0 = c0 + j0 + 16 * z;
    _mm512_storeu_ps(d0, beta == 0.0f ? s0[z] : _mm512_add_ps(_mm512_loadu_ps(d0), s0[z]));
    if (c1 == nullptr) continue;
    float* d1 = c1 + j0 + 16 * z;
    _mm512_storeu_ps(d1, beta == 0.0f ? s1[z] : _mm512_add_ps(_mm512_loadu_ps(d1), s1[z]));
  }
}

using PairFn = void (*)(const RowPairs&, std::int64_t, const float*, std::int64_t, std::int64_t,
                        float, float*, float*);
template <std::size_t... Z>
constexpr std::array<PairFn, sizeof...(Z)> pair_kernels(std::index_sequence<Z...>) {
  return {&kernel_pair<static_cast<int>(Z) + 1>...};
}
constexpr auto kPairKernels = pair_kernels(std::make_index_sequence<kChunk / 16>{});

// Inside a parallel region: thread t of nt counts the zeros in its share of
// A's rows into `zeros`, and every thread returns the same answer: whether
// A has enough of them for the sparse path.
bool sparse_enough(std::atomic<std::int64_t>& zeros, const float* a, std::int64_t lda,
                   std::int64_t m, std::int64_t k, int t, int nt) {
  zeros.fetch_add(count_zeros(a, lda, m * t / nt, m * (t + 1) / nt, k), std::memory_order_relaxed);
#pragma omp barrier
  return static_cast<double>(zeros.load(std::memory_order_relaxed)) >=
         kSparseMinZeros * static_cast<double>(m * k);
}

}  // namespace

bool gemm_nn_sparse_a(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                      std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc) {
  if (n % 16 != 0 || m < 2 || k < 32 || m * n * k < kSparseMinWork ||
      (beta != 0.0f && beta != 1.0f) || k > INT32_MAX - 16)
    return false;
  const std::int64_t pairs = (m + 1) / 2;
  const int threads = num_threads();
  // The inner dimension is cut in two halves, summed apart and then added:
  // C = (beta C + A[:, :h] B[:h]) + A[:, h:] B[h:]. With two threads, each
  // core reads only its half of B, the weight, which is the half its
  // optimiser update writes (Optimizer splits a large parameter's elements
  // in the same halves), so the weight stays in that core's cache from one
  // step to the next instead of moving between the cores twice a step
  // (docs/design.md, "Where the weight lives between steps"). The cut does not
  // depend on the thread count, so neither do the results' bits.
  const std::int64_t half = k / 2;
  thread_local std::vector<float> second;  // the second half's sums
  second.resize(static_cast<std::size_t>(m * n));
  float* const sums = second.data();
  std::atomic<std::int64_t> zeros{0};
  bool sparse = false;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (sparse_enough(zeros, a, lda, m, k, t, nt)) {
      thread_local RowPairs lists;
      RowPairs& L = lists;
      // Thread t works on half t % 2 (both halves with one thread), over its
      // share of the row pairs among the threads on that half.
      for (int h = nt == 1 ? 0 : t % 2; h < 2; h += nt == 1 ? 1 : 2) {
        const int on_half = nt == 1 ? 1 : (nt - h + 1) / 2, rank = nt == 1 ? 0 : t / 2;
        const std::int64_t q0 = pairs * rank / on_half, q1 = pairs * (rank + 1) / on_half;
        const std::int64_t k0 = h == 0 ? 0 : half, k1 = h == 0 ? half : k;
        L.reserve(q1 - q0, k1 - k0);
        for (std::int64_t q = q0; q < q1; ++q) {
          const float* r0 = a + 2 * q * lda + k0;
          build_pair(r0, 2 * q + 1 < m ? r0 + lda : nullptr, k1 - k0, q - q0, L);
        }
        float* out = h == 0 ? c : sums;
        const std::int64_t ldo = h == 0 ? ldc : n;
        const float* bh = b + k0 * ldb;
        for (std::int64_t j0 = 0; j0 < n; j0 += kChunk) {
          const PairFn f =
              kPairKernels[static_cast<std::size_t>(std::min(kChunk, n - j0) / 16 - 1)];
          for (std::int64_t q = q0; q < q1; ++q)
            f(L, q - q0, bh, ldb, j0, h == 0 ? beta : 0.0f, out + 2 * q * ldo,
              2 * q + 1 < m ? out + (2 * q + 1) * ldo : nullptr);
        }
      }
#pragma omp barrier
      for (std::int64_t r = m * t / nt; r < m * (t + 1) / nt; ++r) {
        float* cr = c + r * ldc;
        const float* sr = sums + r * n;
        for (std::int64_t j = 0; j < n; j += 16)
          _mm512_storeu_ps(cr + j, _mm512_add_ps(_mm512_loadu_ps(cr + j), _mm512_loadu_ps(sr + j)));
      }
      if (t == 0) sparse = true;
    }
  }
  if (!sparse) return false;
  count_sparse_product();
  return true;
}

bool gemm_nt_sparse_a(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                      std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc) {
  // C = A B^T reads B's columns for A's nonzeros; B transposed turns them
  // into rows, for the kernel above. The copy touches n k elements once
  // against m n k multiply-adds, so it is made only for m >= kMinRowsToTranspose.
  if (n % 16 != 0 || m < kMinRowsToTranspose || k < 32 || m * n * k < kSparseMinWork ||
      (beta != 0.0f && beta != 1.0f) || k > INT32_MAX - 16)
    return false;
  const std::int64_t pairs = (m + 1) / 2, blocks = n / 16;
  const int threads = num_threads();
  std::atomic<std::int64_t> zeros{0};
  bool sparse = false;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (sparse_enough(zeros, a, lda, m, k, t, nt)) {
      // Each thread takes a contiguous share of C's columns, which are B's
      // rows: the share of the weight its optimiser update writes (each
      // large parameter is cut in equal halves there). It transposes only
      // those rows and builds every pair's lists itself, so no part of the
      // weight or the copy moves between the cores.
      const std::int64_t j0 = blocks * t / nt * 16, j1 = blocks * (t + 1) / nt * 16;
      const std::int64_t w = j1 - j0;
      thread_local std::vector<float> transposed;
      thread_local RowPairs lists;
      transposed.resize(static_cast<std::size_t>(k * w));
      float* bt = transposed.data();  // bt[i, j] = b[j0 + j, i]
      std::int64_t i = 0;
      for (; i + 16 <= k; i += 16)
        for (std::int64_t j = 0; j < w; j += 16)
          transpose16(b + (j0 + j) * ldb + i, ldb, bt + i * w + j, w);
      for (; i < k; ++i)
        for (std::int64_t j = 0; j < w; ++j) bt[i * w + j] = b[(j0 + j) * ldb + i];
      RowPairs& L = lists;
      L.reserve(pairs, k);
      for (std::int64_t q = 0; q < pairs; ++q) {
        const float* r0 = a + 2 * q * lda;
        build_pair(r0, 2 * q + 1 < m ? r0 + lda : nullptr, k, q, L);
      }
      for (std::int64_t jc = 0; jc < w; jc += kChunk) {
        const PairFn f = kPairKernels[static_cast<std::size_t>(std::min(kChunk, w - jc) / 16 - 1)];
        for (std::int64_t q = 0; q < pairs; ++q)
          f(L, q, bt, w, jc, beta, c + 2 * q * ldc + j0,
            2 * q + 1 < m ? c + (2 * q + 1) * ldc + j0 : nullptr);
      }
      if (t == 0) sparse = true;
    }
  }
  if (!sparse) return false;
  count_sparse_product();
  return true;
}

#else  // no AVX-512: every product stays dense

bool gemm_nn_sparse_a(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                      const float*, std::int64_t, float, float*, std::int64_t) {
  return false;
}
bool gemm_nt_sparse_a(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                      const float*, std::int64_t, float, float*, std::int64_t) {
  return false;
}

#endif

}  // namespace tapegrad::detail
