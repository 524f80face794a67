// Fused affine layers, one engine op each with its own backward, checked
// against finite differences like every other op. Two weight layouts:
//   linear: w (Out, In), y = x w^T + b (PyTorch's layout);
//   affine: w (In, Out), y = x w + b.
// The values are the same; the layout decides which operand the products
// read along their rows. With w (In, Out), y = x w and dw = x^T g both walk
// x's nonzeros in order, so tapegrad::gemm can skip a sparse input's zeros
// in both products (docs/design.md, "Weight storage").
// Dimension letters: N rows (samples), I inputs, O outputs.
#include <fmt/format.h>

#include <cstring>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {
namespace {

using detail::grads_for_write;
using detail::values_of;
using detail::wants_grad;

// y += x w^T (linear) or x w (affine, InOut).
template <bool InOut, class T>
void layer_product(std::int64_t n, std::int64_t o, std::int64_t i, const T* x, const T* w, T* y) {
  if constexpr (InOut)
    detail::gemm(false, false, n, o, i, T(1), x, i, w, o, T(1), y, o);
  else
    detail::gemm(false, true, n, o, i, T(1), x, i, w, i, T(1), y, o);
}

template <bool InOut>
void layer_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0], iw = node.in[1], ib = node.in[2];
  const std::int64_t n = node.shape[0], o = node.shape[1], i = tape.tensor_node(ix).shape[1];
  const bool need_x = wants_grad(tape, t, 0), need_w = wants_grad(tape, t, 1);
  const bool need_b = ib != kNone && tape.tensor_node(ib).requires_grad;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* w = values_of<T>(tape, iw);
    const T* x = values_of<T>(tape, ix);
    T beta;        // 0 when the gradient buffer is fresh: overwrite, no zeroing
    if (need_x) {  // dx = g w (linear) or g w^T (affine)
      T* gx = grads_for_write<T>(tape, ix, &beta);
      detail::gemm(false, InOut, n, i, o, T(1), g, o, w, InOut ? o : i, beta, gx, i);
    }
    if (need_w) {  // dw = g^T x (linear) or x^T g (affine)
      if constexpr (InOut)
        detail::gemm_into_grad(tape, iw, true, false, i, o, n, x, i, g, o);
      else
        detail::gemm_into_grad(tape, iw, true, false, o, i, n, g, o, x, i);
    }
    if (need_b) {
      T* gb = grads_for_write<T>(tape, ib, &beta);
      if (beta == T(0)) std::fill(gb, gb + o, T(0));
      for (std::int64_t r = 0; r < n; ++r)
        for (std::int64_t c = 0; c < o; ++c) gb[c] += g[r * o + c];
    }
  });
}

// Rows of y start as b (or zero); the product adds to them.
template <class T>
void start_rows(T* y, const T* b, std::int64_t n, std::int64_t o) {
  if (b == nullptr) {
    std::memset(y, 0, static_cast<std::size_t>(n * o) * sizeof(T));
    return;
  }
  for (std::int64_t r = 0; r < n; ++r)
    std::memcpy(y + r * o, b, static_cast<std::size_t>(o) * sizeof(T));
}

template <bool InOut>
void layer_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0], iw = node.in[1], ib = node.in[2];
  const std::int64_t n = node.shape[0], o = node.shape[1], i = tape.tensor_node(ix).shape[1];
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    T* y = values_of<T>(tape, t);
    start_rows<T>(y, ib != kNone ? values_of<T>(tape, ib) : nullptr, n, o);
    layer_product<InOut>(n, o, i, values_of<T>(tape, ix), values_of<T>(tape, iw), y);
  });
}

// t_y = t_x w^T + x t_w^T + t_b (each row); with w (In, Out), without the transposes.
template <bool InOut>
void layer_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0], iw = node.in[1], ib = node.in[2];
  const std::int64_t n = node.shape[0], o = node.shape[1], i = tape.tensor_node(ix).shape[1];
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    T* ty = tg.out<T>(t);
    start_rows<T>(ty, ib != kNone && tg.has(ib) ? tg.of<T>(ib) : nullptr, n, o);
    if (tg.has(ix)) layer_product<InOut>(n, o, i, tg.of<T>(ix), values_of<T>(tape, iw), ty);
    if (tg.has(iw)) layer_product<InOut>(n, o, i, values_of<T>(tape, ix), tg.of<T>(iw), ty);
  });
}

const TensorOpDef kLinear{.name = "linear",
                          .forward = &layer_forward<false>,
                          .backward = &layer_backward<false>,
                          .jvp = &layer_jvp<false>,
                          .curvature = &detail::bilinear_curvature,
                          .gate = Gate::switches,
                          .note = "(dx = g w, dw = g^T x), bias adds"};
const TensorOpDef kAffine{.name = "affine",
                          .forward = &layer_forward<true>,
                          .backward = &layer_backward<true>,
                          .jvp = &layer_jvp<true>,
                          .curvature = &detail::bilinear_curvature,
                          .gate = Gate::switches,
                          .note = "(dx = g w^T, dw = x^T g), bias adds"};

Tensor record(const TensorOpDef& def, const Tensor& x, const Tensor& w, const Tensor& b,
              Site where) {
  const bool in_out = &def == &kAffine;
  const char* op = def.name;
  Tape& tape = x.checked(op);
  const std::uint32_t ix = detail::arg(tape, x, op), iw = detail::arg(tape, w, op);
  const std::uint32_t ib = b.defined() ? detail::arg(tape, b, op) : kNone;
  const Shape xs = x.shape(), ws = w.shape();
  const int wi = in_out ? 0 : 1, wo = in_out ? 1 : 0;  // w's input and output axes
  if (xs.rank() != 2 || ws.rank() != 2 || xs[1] != ws[wi])
    throw Error(
        fmt::format("{}: input {} and weight {} do not fit: need input (N,I) and "
                    "weight {} with the same I",
                    op, xs.str(), ws.str(), in_out ? "(I,O)" : "(O,I)"));
  if (b.defined() && !(b.shape() == Shape{ws[wo]}))
    throw Error(fmt::format("{}: bias {} does not fit weight {}: need bias ({})", op,
                            b.shape().str(), ws.str(), ws[wo]));
  if (x.dtype() != w.dtype() || (b.defined() && b.dtype() != w.dtype()))
    throw Error(fmt::format("{}: input, weight and bias must share one dtype", op));
  const Shape out{xs[0], ws[wo]};
  const std::uint32_t t = ib == kNone ? tape.push_tensor(&def, out, x.dtype(), {ix, iw}, where)
                                      : tape.push_tensor(&def, out, x.dtype(), {ix, iw, ib}, where);
  def.forward(tape, t);
  return {tape, t};
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Site where) {
  return record(kLinear, x, w, b, where);
}
Tensor affine(const Tensor& x, const Tensor& w, const Tensor& b, Site where) {
  return record(kAffine, x, w, b, where);
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
const OpCheckRegistrar kLayerChecks{
    {"linear", {{4, 3}, {2, 3}, {2}}, [](In x) { return linear(x[0], x[1], x[2]); }},
    {"linear", {{1, 3}, {5, 3}}, [](In x) { return linear(x[0], x[1], Tensor()); }},
    {"affine", {{4, 3}, {3, 2}, {2}}, [](In x) { return affine(x[0], x[1], x[2]); }},
    {"affine", {{1, 3}, {3, 5}}, [](In x) { return affine(x[0], x[1], Tensor()); }},
};
}  // namespace
}  // namespace tapegrad
