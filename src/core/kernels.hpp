#pragma once
// Private helpers shared by the op implementations: typed access to node
// buffers, broadcast index walking, and the matrix-multiply backend.
#include <cstdint>
#include <cstring>

#include "tapegrad/tape.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::detail {

template <class T>
T* values_of(Tape& tape, std::uint32_t t) {
  return static_cast<T*>(tape.tensor_node(t).value);
}
// Gradient buffer of node t, allocated (zeroed) on first use.
template <class T>
T* grads_of(Tape& tape, std::uint32_t t) {
  return static_cast<T*>(tape.grad_buffer(t));
}
// Gradient buffer of node t for a rule that writes every element: `beta` is
// set to 0 when the buffer holds no gradient yet (overwrite it), else to 1
// (add to it). See Tape::grad_for_write.
template <class T>
T* grads_for_write(Tape& tape, std::uint32_t t, T* beta) {
  bool fresh = false;
  T* g = static_cast<T*>(tape.grad_for_write(t, &fresh));
  *beta = fresh ? T(0) : T(1);
  return g;
}
// C = beta C + A^T B (A stored k x m, B k x n; beta 0 or 1) summing only over
// the nonzeros of whichever operand has more exact zeros, when that is at
// least kSparseMinZeros of it, m and n are multiples of 16 and the product
// is big enough to pay for finding them (sparse_gemm.cpp): a weight gradient
// G^T X or X^T G over a batch of images or behind a ReLU. Returns false,
// having done nothing, when it does not apply; the caller then runs the
// dense product.
inline constexpr std::int64_t kSparseMinWork = std::int64_t{1} << 20;
inline constexpr double kSparseMinZeros = 0.35;
bool gemm_tn_sparse(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                    std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                    std::int64_t ldc);
// C = beta C + A B summing only over A's nonzeros (A m x k, B k x n, n a
// multiple of 16; sparse_rows.cpp): the forward product X W of a layer whose
// weight is stored (In, Out),
// and the input gradient G W behind a ReLU.
bool gemm_nn_sparse_a(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                      std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc);
// C = beta C + A B^T (B stored n x k) the same way, through a transposed copy
// of B: the forward product X W^T of a layer whose weight is stored (Out,
// In), behind a ReLU. Only for m >= kMinRowsToTranspose rows, so the copy is
// small against the product.
inline constexpr std::int64_t kMinRowsToTranspose = 32;
bool gemm_nt_sparse_a(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                      std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
                      std::int64_t ldc);
void count_sparse_product();  // for sparse_gemm_count()

// Adds op(A) op(B) (m x n, inner size k; BLAS conventions) to node t's
// gradient, or writes it there when the gradient holds nothing yet. With
// k == 1 into a parameter's unwritten gradient, the product is an outer
// product and only its factors are kept (Tape::defer_outer).
template <class T>
void gemm_into_grad(Tape& tape, std::uint32_t t, bool ta, bool tb, std::int64_t m, std::int64_t n,
                    std::int64_t k, const T* a, std::int64_t lda, const T* b, std::int64_t ldb) {
  if (k == 1 && tape.defer_outer(t, m, n, a, ta ? 1 : lda, b, tb ? ldb : 1)) return;
  T beta;
  T* g = grads_for_write<T>(tape, t, &beta);
  gemm(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, g, n);
}
// Whether input k of node t takes a gradient.
inline bool wants_grad(Tape& tape, std::uint32_t t, int k) {
  return tape.tensor_node(tape.tensor_node(t).in[k]).requires_grad;
}

void add_into(DType dtype, void* dst, const void* src, std::int64_t n);

// Strides (in elements) of `in` seen through the broadcast shape `out`: 0
// along broadcast axes. Returns them right-aligned to out.rank().
void broadcast_strides(const Shape& in, const Shape& out, std::int64_t* strides);

// Calls f(o, ia, ib) for every flat output index o and the matching flat
// input indices of two broadcast inputs. The innermost axis is a plain loop.
template <class F>
void for_each_broadcast(const Shape& out, const std::int64_t* sa, const std::int64_t* sb, F&& f) {
  const int r = out.rank();
  const std::int64_t n = out.numel();
  if (n == 0) return;
  if (r == 0) {
    f(std::int64_t{0}, std::int64_t{0}, std::int64_t{0});
    return;
  }
  const std::int64_t inner = out[r - 1], ia_step = sa[r - 1], ib_step = sb[r - 1];
  std::int64_t idx[kMaxRank] = {};
  std::int64_t ia = 0, ib = 0;
  for (std::int64_t o = 0; o < n; o += inner) {
    for (std::int64_t k = 0; k < inner; ++k) f(o + k, ia + k * ia_step, ib + k * ib_step);
    // Odometer over the outer axes.
    for (int d = r - 2; d >= 0; --d) {
      ia += sa[d], ib += sb[d];
      if (++idx[d] < out[d]) break;
      ia -= sa[d] * out[d], ib -= sb[d] * out[d];
      idx[d] = 0;
    }
  }
}

// The matrix product (declared in tapegrad/threads.hpp).
using tapegrad::gemm;

// Checks a tensor argument and that it lives on `tape`; returns its index.
std::uint32_t arg(Tape& tape, const class tapegrad::Tensor& x, const char* op);

}  // namespace tapegrad::detail
