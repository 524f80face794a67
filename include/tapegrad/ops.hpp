#pragma once
// Differentiable tensor operations. Elementwise binary ops broadcast like
// NumPy; their backward sums the gradient over broadcast axes (a copy gate is
// an adder). Every shape error names the op and both shapes.
//
// Each op takes the caller's source location as a defaulted last parameter
// (leave it out); the node keeps it for anomaly errors and node checks.
// Library code that builds one op from others passes its own `where` on, so
// every node of a composite op names the user's line.
#include <cstdint>
#include <functional>
#include <span>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

// ---- elementwise, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor sub(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor mul(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor div(const Tensor& a, const Tensor& b, Site where = Site::current());
// Router gates: the gradient goes to the larger (smaller) input; on a tie, to a.
Tensor maximum(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor minimum(const Tensor& a, const Tensor& b, Site where = Site::current());
// The C library's functions of two arguments, element by element (rules and
// edge policies in math_rules.hpp).
Tensor atan2(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor hypot(const Tensor& a, const Tensor& b, Site where = Site::current());
Tensor fmod(const Tensor& a, const Tensor& b, Site where = Site::current());

// Operators take one operand as detail::At<Tensor> (T below) to learn the
// caller's line; they behave exactly like the named functions.
namespace detail {
using T = At<Tensor>;
}
inline Tensor operator+(detail::T a, const Tensor& b) { return add(a.v, b, a.where); }
inline Tensor operator-(detail::T a, const Tensor& b) { return sub(a.v, b, a.where); }
inline Tensor operator*(detail::T a, const Tensor& b) { return mul(a.v, b, a.where); }
inline Tensor operator/(detail::T a, const Tensor& b) { return div(a.v, b, a.where); }
// With plain numbers (a rank-0 constant of the tensor's dtype is broadcast).
Tensor operator+(detail::T a, double c);
Tensor operator+(double c, detail::T a);
Tensor operator-(detail::T a, double c);
Tensor operator-(double c, detail::T a);
Tensor operator*(detail::T a, double c);
Tensor operator*(double c, detail::T a);
Tensor operator/(detail::T a, double c);
Tensor operator/(double c, detail::T a);

// A Scalar scales a tensor; the gradient flows back to both.
Tensor scale(const Scalar& s, const Tensor& x, Site where = Site::current());
inline Tensor operator*(const Scalar& s, detail::T x) { return scale(s, x.v, x.where); }
inline Tensor operator*(detail::T x, const Scalar& s) { return scale(s, x.v, x.where); }

// ---- elementwise, unary ----
Tensor neg(const Tensor& x, Site where = Site::current());
inline Tensor operator-(detail::T x) { return neg(x.v, x.where); }
// Every unary function of the op table (op_table.hpp), element by element,
// with the Scalar rules (math_rules.hpp): exp, log, sqrt, abs (gradient 0 at
// 0), tanh, sigmoid, relu (gradient 1 at exactly 0, as in the notes), sin,
// cos, ..., erf, log1p, ..., floor, ceil, round, trunc.
#define TAPEGRAD_X(name, kind) TAPEGRAD_TENSOR_##kind(name)
#define TAPEGRAD_TENSOR_structural(name)
#define TAPEGRAD_TENSOR_unary_op(name)
#define TAPEGRAD_TENSOR_binary_op(name)
#define TAPEGRAD_TENSOR_binary_fn(name)
#define TAPEGRAD_TENSOR_unary_fn(name) Tensor name(const Tensor& x, Site where = Site::current());
TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_TENSOR_structural
#undef TAPEGRAD_TENSOR_unary_op
#undef TAPEGRAD_TENSOR_binary_op
#undef TAPEGRAD_TENSOR_binary_fn
#undef TAPEGRAD_TENSOR_unary_fn
Tensor pow(const Tensor& x, double p, Site where = Site::current());
Tensor leaky_relu(const Tensor& x, double slope = 0.01, Site where = Site::current());

// ---- reductions ----
Tensor sum(const Tensor& x, Site where = Site::current());  // all elements, rank 0
Tensor sum(const Tensor& x, int axis, bool keepdims = false, Site where = Site::current());
Tensor mean(const Tensor& x, Site where = Site::current());
Tensor mean(const Tensor& x, int axis, bool keepdims = false, Site where = Site::current());
// Maximum along an axis: routes the gradient to the arg-max (first on ties).
Tensor max(const Tensor& x, int axis, bool keepdims = false, Site where = Site::current());

// ---- linear algebra and shape ----
// (M,K)@(K,N); (B,M,K)@(B,K,N); (B,M,K)@(K,N); (M,K)@(B,K,N). Through BLAS,
// with transpose flags in backward instead of copies.
Tensor matmul(const Tensor& a, const Tensor& b, Site where = Site::current());
// Swaps the last two axes (rank >= 2).
Tensor transpose(const Tensor& x, Site where = Site::current());
Tensor reshape(const Tensor& x, const Shape& shape, Site where = Site::current());
// Rows [begin, end) along axis 0.
Tensor slice_rows(const Tensor& x, std::int64_t begin, std::int64_t end,
                  Site where = Site::current());
Tensor concat(std::span<const Tensor> xs, int axis = 0, Site where = Site::current());
Tensor concat(std::initializer_list<Tensor> xs, int axis = 0, Site where = Site::current());

// ---- fused layers and losses (engine ops with their own backward) ----
// x (N,In), w (Out,In), b (Out) or empty: x w^T + b, shape (N,Out).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Site where = Site::current());
// The same layer with the weight stored (In, Out): x (N,In), w (In,Out), b
// (Out) or empty: x w + b, shape (N,Out). Same values as linear(x, w^T, b);
// the layout lets a sparse x's zeros be skipped in y = x w and dw = x^T g.
Tensor affine(const Tensor& x, const Tensor& w, const Tensor& b, Site where = Site::current());
// Mean over rows of -log softmax(logits)[label]; stable for extreme logits.
Tensor softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> labels,
                             Site where = Site::current());
// Mean of -(y log s(z) + (1-y) log(1-s(z))) with s the sigmoid, computed from
// the logits z without overflow.
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Site where = Site::current());
// Row-wise softmax (last axis), for predictions.
Tensor softmax(const Tensor& x, Site where = Site::current());

// ---- checkpointed blocks ----
// f(x) recorded as one node that keeps only its input and output: the nodes
// inside f are computed on a scratch tape and dropped, and the backward sweep
// runs f again (on a scratch tape, with gradients) to send the output's
// gradient to x and to every parameter f reads (Parameter::var on the
// current tape). Activation memory for recompute, as PyTorch's
// torch.utils.checkpoint; values and gradients are those of f recorded
// directly. f must be a pure function of x and the parameters: it runs once
// when recorded and once per backward. First order only (forward mode and
// second order through the block throw, naming it); the scratch tapes are
// per thread and hold one block's nodes at a time (checkpoint_scratch_peak).
using BlockFn = std::function<Tensor(const Tensor& x)>;
Tensor checkpoint(BlockFn f, const Tensor& x, Site where = Site::current());
// The largest number of bytes a scratch tape of this thread has held (the
// memory that recomputing a block costs beside the tape's own).
std::size_t checkpoint_scratch_peak();

// ---- user-defined ops ----
// Records a node of an op defined outside the library: def.forward computes
// the value from the inputs (and attrs), def.backward adds each input's
// gradient; gradcheck and check_nodes verify one against the other.
Tensor record_op(const TensorOpDef& def, std::initializer_list<Tensor> inputs, const Shape& out,
                 TensorAttrs attrs = {}, Site where = Site::current());

}  // namespace tapegrad
