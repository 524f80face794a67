#include "core/kernels.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include "tapegrad/tensor.hpp"

#ifdef TAPEGRAD_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace tapegrad::detail {

void add_into(DType dtype, void* dst, const void* src, std::int64_t n) {
  dispatch_dtype(dtype, [&](auto z) {
    using T = decltype(z);
    T* d = static_cast<T*>(dst);
    const T* s = static_cast<const T*>(src);
    for (std::int64_t i = 0; i < n; ++i) d[i] += s[i];
  });
}

void broadcast_strides(const Shape& in, const Shape& out, std::int64_t* strides) {
  const int r = out.rank(), off = r - in.rank();
  std::int64_t s = 1;
  for (int d = r - 1; d >= 0; --d) {
    const int k = d - off;
    if (k < 0 || in[k] == 1) {
      strides[d] = 0;
    } else {
      strides[d] = s;
    }
    if (k >= 0) s *= in[k];
  }
}

namespace {
// k = 1: C = alpha a b^T + beta C, an outer product (the weight gradient of a
// batch of one). One pass over C that BLAS libraries do not special-case;
// with beta = 0, C is not read.
template <class T>
void outer(bool ta, bool tb, std::int64_t m, std::int64_t n, T alpha, const T* a, std::int64_t lda,
           const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const std::int64_t sa = ta ? 1 : lda, sb = tb ? ldb : 1;
#pragma omp parallel for schedule(static) if (m * n >= 65536)
  for (std::int64_t r = 0; r < m; ++r) {
    const T ar = alpha * a[r * sa];
    T* cr = c + r * ldc;
    if (beta == T(0)) {
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) cr[j] = ar * b[j * sb];
    } else {
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) cr[j] = beta * cr[j] + ar * b[j * sb];
    }
  }
}
// k = 0: C = beta C (and all zeros for beta = 0, whatever C held).
template <class T>
void scale_only(std::int64_t m, std::int64_t n, T beta, T* c, std::int64_t ldc) {
  for (std::int64_t r = 0; r < m; ++r)
    for (std::int64_t j = 0; j < n; ++j)
      c[r * ldc + j] = beta == T(0) ? T(0) : beta * c[r * ldc + j];
}
}  // namespace

std::uint32_t arg(Tape& tape, const Tensor& x, const char* op) {
  if (&x.checked(op) != &tape)
    throw Error(
        fmt::format("{}: the operands live on different tapes; build a graph on one tape", op));
  return x.index();
}

}  // namespace tapegrad::detail

namespace tapegrad {
using detail::outer;
using detail::scale_only;

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_only(m, n, beta, c, ldc);
  if (k == 1) return outer(ta, tb, m, n, alpha, a, lda, b, ldb, beta, c, ldc);
  // Products with an operand of many exact zeros (a batch of images with a
  // black background, a ReLU's output or the gradient behind it) sum over
  // the nonzeros only: weight gradients G^T X or X^T G, A B and A B^T.
  if (alpha == 1.0f && !(ta && tb) &&
      (ta   ? detail::gemm_tn_sparse(m, n, k, a, lda, b, ldb, beta, c, ldc)
       : tb ? detail::gemm_nt_sparse_a(m, n, k, a, lda, b, ldb, beta, c, ldc)
            : detail::gemm_nn_sparse_a(m, n, k, a, lda, b, ldb, beta, c, ldc)))
    return;
#ifdef TAPEGRAD_HAVE_DNNL
  if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) ==
      dnnl_success)
    return;
#endif
  if (m == 1 && !ta) {
    // A row vector times a matrix: y = op(B)^T a, a GEMV is several times
    // faster than a GEMM of height 1.
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans,
                tb ? static_cast<int>(n) : static_cast<int>(k),
                tb ? static_cast<int>(k) : static_cast<int>(n), alpha, b, static_cast<int>(ldb), a,
                1, beta, c, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_only(m, n, beta, c, ldc);
  if (k == 1) return outer(ta, tb, m, n, alpha, a, lda, b, ldb, beta, c, ldc);
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace tapegrad

// ---- threads ----
#include <omp.h>
#include <thread>

#include "tapegrad/threads.hpp"

extern "C" void openblas_set_num_threads(int);

namespace tapegrad {
namespace {
// Per thread, like OpenMP's own setting (omp_set_num_threads is per thread).
thread_local int g_threads = 0;
}  // namespace
void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
int num_threads() {
  return g_threads > 0 ? g_threads
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
const char* float_gemm_backend() {
#ifdef TAPEGRAD_HAVE_DNNL
  return "onednn";
#else
  return "openblas";
#endif
}
}  // namespace tapegrad
