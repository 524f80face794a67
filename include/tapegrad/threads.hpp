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
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc);
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc);

}  // namespace tapegrad
