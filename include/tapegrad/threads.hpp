#pragma once
// Threads used by the matrix kernels (oneDNN's OpenMP pool and OpenBLAS), and
// the matrix-product backend itself, for custom ops and benchmarks.
// Tapes themselves are per thread and take no locks.
#include <cstdint>

namespace tapegrad {

// Sets the number of threads the calling thread uses for matrix products and
// optimiser updates; n <= 0 means all cores. Each thread has its own setting.
void set_num_threads(int n);
int num_threads();
// "onednn" or "openblas": the float32 matrix-multiply backend of this build.
const char* float_gemm_backend();

// C = alpha op(A) op(B) + beta C, row-major, op(X) = X^T when tX: the product
// every tapegrad op uses (oneDNN for float32 when built with it, else CBLAS;
// k = 1 is an outer product of our own). With beta = 0, C is only written and
// may hold anything before, even NaN.
//
// Float products with alpha 1, beta 0 or 1 and m n k >= 2^20 sum only over
// one operand's nonzeros on AVX-512 builds when that operand is at least 35%
// exact zeros (a batch of images with a black background, a ReLU's output
// or the gradient behind it):
//   A^T B with B sparse, m and n multiples of 16: the weight gradient G^T X;
//   A^T B with A sparse, m and n multiples of 16: the weight gradient X^T G;
//   A B with A sparse, n a multiple of 16: the forward product X W of a
//   weight stored (In, Out), and an input gradient G W behind a ReLU.
// The sums run in another order than the dense product's (the same on any
// number of threads), and a skipped zero contributes nothing even against
// an infinity or NaN in the other operand.
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc);
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc);
// How many products gemm has summed over nonzeros only, in this process.
std::uint64_t sparse_gemm_count();

}  // namespace tapegrad
