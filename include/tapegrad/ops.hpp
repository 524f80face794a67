#pragma once
// Differentiable tensor operations. Elementwise binary ops broadcast like
// NumPy; their backward sums the gradient over broadcast axes (a copy gate is
// an adder). Every shape error names the op and both shapes.
#include <cstdint>
#include <span>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

// ---- elementwise, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// Router gates: the gradient goes to the larger (smaller) input; on a tie, to a.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
// With plain numbers (a rank-0 constant of the tensor's dtype is broadcast).
Tensor operator+(const Tensor& a, double c);
Tensor operator+(double c, const Tensor& a);
Tensor operator-(const Tensor& a, double c);
Tensor operator-(double c, const Tensor& a);
Tensor operator*(const Tensor& a, double c);
Tensor operator*(double c, const Tensor& a);
Tensor operator/(const Tensor& a, double c);
Tensor operator/(double c, const Tensor& a);

// A Scalar scales a tensor; the gradient flows back to both.
Tensor operator*(const Scalar& s, const Tensor& x);
Tensor operator*(const Tensor& x, const Scalar& s);

// ---- elementwise, unary ----
Tensor operator-(const Tensor& x);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);  // gradient 0 at 0
Tensor pow(const Tensor& x, double p);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);  // gradient 1 at exactly 0, as in the notes
Tensor leaky_relu(const Tensor& x, double slope = 0.01);

// ---- reductions ----
Tensor sum(const Tensor& x);  // all elements, rank 0
Tensor sum(const Tensor& x, int axis, bool keepdims = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int axis, bool keepdims = false);
// Maximum along an axis: routes the gradient to the arg-max (first on ties).
Tensor max(const Tensor& x, int axis, bool keepdims = false);

// ---- linear algebra and shape ----
// (M,K)@(K,N); (B,M,K)@(B,K,N); (B,M,K)@(K,N); (M,K)@(B,K,N). Through BLAS,
// with transpose flags in backward instead of copies.
Tensor matmul(const Tensor& a, const Tensor& b);
// Swaps the last two axes (rank >= 2).
Tensor transpose(const Tensor& x);
Tensor reshape(const Tensor& x, const Shape& shape);
// Rows [begin, end) along axis 0.
Tensor slice_rows(const Tensor& x, std::int64_t begin, std::int64_t end);
Tensor concat(std::span<const Tensor> xs, int axis = 0);
Tensor concat(std::initializer_list<Tensor> xs, int axis = 0);

// ---- fused layers and losses (engine ops with their own backward) ----
// x (N,In), w (Out,In), b (Out) or empty: x w^T + b, shape (N,Out).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
// Mean over rows of -log softmax(logits)[label]; stable for extreme logits.
Tensor softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> labels);
// Mean of -(y log s(z) + (1-y) log(1-s(z))) with s the sigmoid, computed from
// the logits z without overflow.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets);
// Row-wise softmax (last axis), for predictions.
Tensor softmax(const Tensor& x);

// ---- user-defined ops ----
// Records a node of an op defined outside the library: def.forward computes
// the value from the inputs (and attrs), def.backward adds each input's
// gradient; gradcheck and check_nodes verify one against the other.
Tensor record_op(const TensorOpDef& def, std::initializer_list<Tensor> inputs, const Shape& out,
                 TensorAttrs attrs = {});

}  // namespace tapegrad
