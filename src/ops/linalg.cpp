// Matrix products and shape operations.
//   matmul: C = A B, so dA = dC B^T and dB = A^T dC, computed by BLAS with
//   transpose flags rather than transposed copies.
// Dimension letters: B batch, M rows of A, K inner, N columns of B.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {
namespace {

using detail::arg;
using detail::grads_for_write;
using detail::grads_of;
using detail::values_of;
using detail::wants_grad;

struct MatmulDims {
  std::int64_t batch = 1, m = 0, k = 0, n = 0;
  bool a_batched = false, b_batched = false;
};

MatmulDims matmul_dims(const Shape& a, const Shape& b) {
  const auto fail = [&](const std::string& why) {
    throw Error(fmt::format("matmul: {} @ {}: {}", a.str(), b.str(), why));
  };
  if (a.rank() < 2 || a.rank() > 3 || b.rank() < 2 || b.rank() > 3)
    fail("operands must be matrices (rank 2) or batches of matrices (rank 3)");
  MatmulDims d;
  d.a_batched = a.rank() == 3;
  d.b_batched = b.rank() == 3;
  d.m = a[a.rank() - 2];
  d.k = a[a.rank() - 1];
  d.n = b[b.rank() - 1];
  const std::int64_t kb = b[b.rank() - 2];
  if (d.k != kb) fail(fmt::format("inner dimensions {} and {} differ", d.k, kb));
  if (d.a_batched && d.b_batched && a[0] != b[0])
    fail(fmt::format("batch sizes {} and {} differ", a[0], b[0]));
  d.batch = d.a_batched ? a[0] : (d.b_batched ? b[0] : 1);
  return d;
}

MatmulDims node_dims(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  return matmul_dims(tape.tensor_node(n.in[0]).shape, tape.tensor_node(n.in[1]).shape);
}

void matmul_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ia = node.in[0], ib = node.in[1];
  const MatmulDims d = node_dims(tape, t);
  const bool need_a = wants_grad(tape, t, 0), need_b = wants_grad(tape, t, 1);
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* a = values_of<T>(tape, ia);
    const T* b = values_of<T>(tape, ib);
    const std::int64_t sa = d.a_batched ? d.m * d.k : 0, sb = d.b_batched ? d.k * d.n : 0;
    // beta is 0 for a fresh gradient buffer (overwrite). A slice written by
    // several batch products (an unbatched operand) takes beta only in the
    // first and adds in the rest.
    T beta;
    if (need_a) {
      T* ga = grads_for_write<T>(tape, ia, &beta);
      if (d.a_batched && !d.b_batched) {  // (B*M,N)(N,K) in one product
        detail::gemm(false, true, d.batch * d.m, d.k, d.n, T(1), g, d.n, b, d.n, beta, ga, d.k);
      } else {
        if (d.batch == 0 && !d.a_batched && beta == T(0))  // no product writes A's gradient
          std::fill(ga, ga + d.m * d.k, T(0));
        for (std::int64_t i = 0; i < d.batch; ++i)  // dA_i += dC_i B_i^T
          detail::gemm(false, true, d.m, d.k, d.n, T(1), g + i * d.m * d.n, d.n, b + i * sb, d.n,
                       i == 0 || d.a_batched ? beta : T(1), ga + i * sa, d.k);
      }
    }
    if (need_b) {
      if (d.a_batched && !d.b_batched) {  // (K,B*M)(B*M,N) in one product
        detail::gemm_into_grad(tape, ib, true, false, d.k, d.n, d.batch * d.m, a, d.k, g, d.n);
      } else if (d.batch == 1 && !d.b_batched) {  // plain (M,K)(K,N)
        detail::gemm_into_grad(tape, ib, true, false, d.k, d.n, d.m, a, d.k, g, d.n);
      } else {
        T* gb = grads_for_write<T>(tape, ib, &beta);
        if (d.batch == 0 && !d.b_batched && beta == T(0))  // no product writes B's gradient
          std::fill(gb, gb + d.k * d.n, T(0));
        for (std::int64_t i = 0; i < d.batch; ++i)  // dB_i += A_i^T dC_i
          detail::gemm(true, false, d.k, d.n, d.m, T(1), a + i * sa, d.k, g + i * d.m * d.n, d.n,
                       i == 0 || d.b_batched ? beta : T(1), gb + i * sb, d.n);
      }
    }
  });
}
// c = a b (beta 0) or c += a b (beta 1), batched as the dims say.
template <class T>
void matmul_product(const MatmulDims& d, const T* pa, const T* pb, T* c, T beta) {
  if (d.k == 0 && beta == T(0))
    std::memset(c, 0, static_cast<std::size_t>(d.batch * d.m * d.n) * sizeof(T));
  if (d.a_batched && !d.b_batched) {
    detail::gemm(false, false, d.batch * d.m, d.n, d.k, T(1), pa, d.k, pb, d.n, beta, c, d.n);
    return;
  }
  const std::int64_t sa = d.a_batched ? d.m * d.k : 0, sb = d.b_batched ? d.k * d.n : 0;
  for (std::int64_t i = 0; i < d.batch; ++i)
    detail::gemm(false, false, d.m, d.n, d.k, T(1), pa + i * sa, d.k, pb + i * sb, d.n, beta,
                 c + i * d.m * d.n, d.n);
}
void matmul_forward(Tape& tape, std::uint32_t t) {
  const MatmulDims d = node_dims(tape, t);
  const TensorNode& node = tape.tensor_node(t);
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    matmul_product(d, values_of<T>(tape, node.in[0]), values_of<T>(tape, node.in[1]),
                   values_of<T>(tape, t), T(0));
  });
}
// Forward mode: t_C = t_A B + A t_B (the product rule; mul switches).
void matmul_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const MatmulDims d = node_dims(tape, t);
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ia = node.in[0], ib = node.in[1];
  const bool ha = tg.has(ia), hb = tg.has(ib);
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    T* tc = tg.out<T>(t);
    if (ha) matmul_product(d, tg.of<T>(ia), values_of<T>(tape, ib), tc, T(0));
    if (hb) matmul_product(d, values_of<T>(tape, ia), tg.of<T>(ib), tc, ha ? T(1) : T(0));
  });
}
const TensorOpDef kMatmul{.name = "matmul",
                          .forward = &matmul_forward,
                          .backward = &matmul_backward,
                          .jvp = &matmul_jvp,
                          .curvature = &detail::bilinear_curvature,
                          .gate = Gate::switches,
                          .note = "(dA = dC B^T, dB = A^T dC)"};

// ---- transpose of the last two axes ----
// Each of `count` matrices of rows x cols is transposed.
struct TransposeAttrs {
  std::int64_t rows, cols, count;
};
template <class T>
void transpose_block(const T* in, T* out, std::int64_t r, std::int64_t c, bool add) {
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < c; ++j) {
      if (add)
        out[j * r + i] += in[i * c + j];
      else
        out[j * r + i] = in[i * c + j];
    }
}
void transpose_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const auto [r, c, count] = n.attrs.get<TransposeAttrs>();
  const std::uint32_t ix = n.in[0];
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    T* gx = grads_of<T>(tape, ix);
    for (std::int64_t b = 0; b < count; ++b)
      transpose_block(g + b * r * c, gx + b * r * c, c, r, true);
  });
}
void transpose_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const auto [r, c, count] = n.attrs.get<TransposeAttrs>();
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, tape.tensor_node(t).in[0]);
    T* o = values_of<T>(tape, t);
    for (std::int64_t b = 0; b < count; ++b)
      transpose_block(in + b * r * c, o + b * r * c, r, c, false);
  });
}
const TensorOpDef kTranspose{.name = "transpose",
                             .forward = &transpose_forward,
                             .backward = &transpose_backward,
                             .jvp = &detail::linear_jvp,
                             .curvature = &no_curvature};

// ---- reshape, slice, concat: gradients are copied back to where values came from ----
void copy_back(Tape& tape, std::uint32_t t, std::uint32_t ix, std::int64_t offset) {
  const TensorNode& n = tape.tensor_node(t);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    T* gx = grads_of<T>(tape, ix) + offset;
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      gx[i] += g[i];
  });
}
void reshape_backward(Tape& tape, std::uint32_t t) {
  copy_back(tape, t, tape.tensor_node(t).in[0], 0);
}
// A copy of a contiguous run of the input (reshape: all of it; slice_rows:
// its rows), starting at a flat offset.
struct CopyAttrs {
  std::int64_t offset = 0;
};
// Copies the node's value from its input, starting at the offset.
void copy_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const std::size_t es = dtype_size(n.dtype);
  std::memcpy(n.value,
              static_cast<const char*>(tape.tensor_node(n.in[0]).value) +
                  n.attrs.get<CopyAttrs>().offset * static_cast<std::int64_t>(es),
              static_cast<std::size_t>(n.shape.numel()) * es);
}
const TensorOpDef kReshape{.name = "reshape",
                           .forward = &copy_forward,
                           .backward = &reshape_backward,
                           .jvp = &detail::linear_jvp,
                           .curvature = &no_curvature};

void slice_backward(Tape& tape, std::uint32_t t) {
  copy_back(tape, t, tape.tensor_node(t).in[0], tape.tensor_node(t).attrs.get<CopyAttrs>().offset);
}
const TensorOpDef kSlice{.name = "slice_rows",
                         .forward = &copy_forward,
                         .backward = &slice_backward,
                         .jvp = &detail::linear_jvp,
                         .curvature = &no_curvature};

// outer: the product of the sizes before the axis; inner: after it. saved:
// int64 per input, its size along the axis.
struct ConcatAttrs {
  std::int64_t outer, inner;
};
void concat_backward(Tape& tape, std::uint32_t t);
void concat_forward(Tape& tape, std::uint32_t t);
const TensorOpDef kConcat{.name = "concat",
                          .forward = &concat_forward,
                          .backward = &concat_backward,
                          .jvp = &detail::linear_jvp,
                          .curvature = &no_curvature,
                          .gate = Gate::distributes,
                          .note = "the gradient in pieces"};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, Site where) {
  Tape& tape = a.checked("matmul");
  const std::uint32_t ia = arg(tape, a, "matmul"), ib = arg(tape, b, "matmul");
  if (a.dtype() != b.dtype())
    throw Error(fmt::format("matmul: dtypes differ ({} and {})", dtype_name(a.dtype()),
                            dtype_name(b.dtype())));
  const MatmulDims d = matmul_dims(a.shape(), b.shape());
  const Shape out = (d.a_batched || d.b_batched) ? Shape{d.batch, d.m, d.n} : Shape{d.m, d.n};
  const std::uint32_t t = tape.push_tensor(&kMatmul, out, a.dtype(), {ia, ib}, where);
  matmul_forward(tape, t);
  return {tape, t};
}

Tensor transpose(const Tensor& x, Site where) {
  Tape& tape = x.checked("transpose");
  const Shape& s = x.shape();
  if (s.rank() < 2) throw Error(fmt::format("transpose: needs rank >= 2, got shape {}", s.str()));
  const Shape out =
      s.with_dim(s.rank() - 1, s[s.rank() - 2]).with_dim(s.rank() - 2, s[s.rank() - 1]);
  const std::int64_t r = s[s.rank() - 2], c = s[s.rank() - 1];
  const std::int64_t count = r * c == 0 ? 0 : s.numel() / (r * c);
  const std::uint32_t t = tape.push_tensor(&kTranspose, out, x.dtype(), {x.index()}, where);
  tape.tensor_node(t).attrs.set(TransposeAttrs{r, c, count});
  transpose_forward(tape, t);
  return {tape, t};
}

Tensor reshape(const Tensor& x, const Shape& shape, Site where) {
  Tape& tape = x.checked("reshape");
  if (shape.numel() != x.numel())
    throw Error(fmt::format("reshape: cannot reshape {} ({} elements) to {} ({} elements)",
                            x.shape().str(), x.numel(), shape.str(), shape.numel()));
  const std::uint32_t ix = x.index();
  const std::uint32_t t = tape.push_tensor(&kReshape, shape, x.dtype(), {ix}, where);
  tape.tensor_node(t).attrs.set(CopyAttrs{0});
  copy_forward(tape, t);
  return {tape, t};
}

Tensor slice_rows(const Tensor& x, std::int64_t begin, std::int64_t end, Site where) {
  Tape& tape = x.checked("slice_rows");
  const Shape& s = x.shape();
  if (s.rank() < 1) throw Error("slice_rows: cannot slice a rank-0 tensor");
  if (begin < 0 || end < begin || end > s[0])
    throw Error(fmt::format("slice_rows: rows [{}, {}) are out of range for shape {}", begin, end,
                            s.str()));
  const Shape out = s.with_dim(0, end - begin);
  const std::int64_t row = s[0] == 0 ? 0 : s.numel() / s[0];
  const std::uint32_t ix = x.index();
  const std::uint32_t t = tape.push_tensor(&kSlice, out, x.dtype(), {ix}, where);
  tape.tensor_node(t).attrs.set(CopyAttrs{begin * row});
  copy_forward(tape, t);
  return {tape, t};
}

namespace {
void concat_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const auto [outer, inner] = n.attrs.get<ConcatAttrs>();
  const auto* sizes = static_cast<const std::int64_t*>(n.saved.data());
  std::int64_t total = 0;
  for (int k = 0; k < n.n_in; ++k) total += sizes[k];
  const std::size_t es = dtype_size(n.dtype);
  std::int64_t off = 0;
  for (int k = 0; k < n.n_in; ++k) {
    const std::int64_t len = sizes[k] * inner;
    const char* src = static_cast<const char*>(tape.tensor_node(n.in[k]).value);
    char* dst = static_cast<char*>(n.value);
    for (std::int64_t o = 0; o < outer; ++o)
      std::memcpy(dst + static_cast<std::size_t>(o * total * inner + off) * es,
                  src + static_cast<std::size_t>(o * len) * es, static_cast<std::size_t>(len) * es);
    off += len;
  }
}

void concat_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const auto [outer, inner] = n.attrs.get<ConcatAttrs>();
  const auto* sizes = static_cast<const std::int64_t*>(n.saved.data());
  std::int64_t total = 0;
  for (int k = 0; k < n.n_in; ++k) total += sizes[k];
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    std::int64_t off = 0;
    for (int k = 0; k < tape.tensor_node(t).n_in; ++k) {
      const std::uint32_t ix = tape.tensor_node(t).in[k];
      const std::int64_t len = sizes[k] * inner;
      if (tape.tensor_node(ix).requires_grad) {
        T* gx = grads_of<T>(tape, ix);
        for (std::int64_t o = 0; o < outer; ++o)
          for (std::int64_t i = 0; i < len; ++i) gx[o * len + i] += g[o * total * inner + off + i];
      }
      off += len;
    }
  });
}
}  // namespace

Tensor concat(std::span<const Tensor> xs, int axis, Site where) {
  if (xs.empty()) throw Error("concat: no tensors given");
  if (xs.size() > 3) {
    // A node has at most three inputs: join the first three, then fold the
    // rest in two at a time; gradients flow back through the chain.
    Tensor acc = concat(xs.subspan(0, 3), axis);
    for (std::size_t k = 3; k < xs.size(); k += 2) {
      const std::size_t take = std::min<std::size_t>(2, xs.size() - k);
      const Tensor parts[3] = {acc, xs[k], take == 2 ? xs[k + 1] : Tensor()};
      acc = concat(std::span<const Tensor>(parts, take + 1), axis);
    }
    return acc;
  }
  Tape& tape = xs[0].checked("concat");
  const Shape& s0 = xs[0].shape();
  if (s0.rank() == 0) throw Error("concat: cannot concatenate rank-0 tensors");
  const int ax = s0.axis(axis, "concat");
  std::int64_t joined = 0;  // size of the result along the axis
  std::uint32_t ids[3] = {kNone, kNone, kNone};
  for (std::size_t k = 0; k < xs.size(); ++k) {
    ids[k] = arg(tape, xs[k], "concat");
    const Shape& s = xs[k].shape();
    bool ok = s.rank() == s0.rank() && xs[k].dtype() == xs[0].dtype();
    for (int d = 0; ok && d < s.rank(); ++d) ok = d == ax || s[d] == s0[d];
    if (!ok)
      throw Error(fmt::format(
          "concat: tensor {} has shape {} ({}), tensor 0 has {} ({}); all must "
          "agree except along axis {}",
          k, s.str(), dtype_name(xs[k].dtype()), s0.str(), dtype_name(xs[0].dtype()), ax));
    joined += s[ax];
  }
  const Shape out = s0.with_dim(ax, joined);
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < ax; ++d) outer *= s0[d];
  for (int d = ax + 1; d < s0.rank(); ++d) inner *= s0[d];
  const std::uint32_t t =
      xs.size() == 1 ? tape.push_tensor(&kConcat, out, xs[0].dtype(), {ids[0]}, where)
      : xs.size() == 2
          ? tape.push_tensor(&kConcat, out, xs[0].dtype(), {ids[0], ids[1]}, where)
          : tape.push_tensor(&kConcat, out, xs[0].dtype(), {ids[0], ids[1], ids[2]}, where);
  TensorNode& node = tape.tensor_node(t);
  node.attrs.set(ConcatAttrs{outer, inner});
  node.saved = tape.acquire(3 * sizeof(std::int64_t));
  auto* sizes = static_cast<std::int64_t*>(node.saved.data());
  for (std::size_t k = 0; k < xs.size(); ++k) sizes[k] = tape.tensor_node(ids[k]).shape[ax];
  concat_forward(tape, t);
  return {tape, t};
}
Tensor concat(std::initializer_list<Tensor> xs, int axis, Site where) {
  return concat(std::span<const Tensor>(xs.begin(), xs.size()), axis, where);
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
Tensor mm(In x) { return matmul(x[0], x[1]); }
const OpCheckRegistrar kLinalgChecks{
    {"matmul", {{3, 4}, {4, 2}}, mm},
    {"matmul", {{1, 5}, {5, 3}}, mm},
    {"matmul", {{2, 3, 4}, {2, 4, 5}}, mm},
    {"matmul", {{2, 3, 4}, {4, 5}}, mm},
    {"matmul", {{3, 4}, {2, 4, 5}}, mm},
    {"transpose", {{3, 4}}, [](In x) { return transpose(x[0]); }},
    {"transpose", {{2, 3, 4}}, [](In x) { return transpose(x[0]); }},
    {"reshape",
     {{3, 4}},
     [](In x) {
       return reshape(x[0], {2, 6});
     }},
    {"slice_rows", {{4, 3}}, [](In x) { return slice_rows(x[0], 1, 3); }},
    {"concat",
     {{2, 3}, {1, 3}},
     [](In x) {
       return concat({x[0], x[1]}, 0);
     }},
    {"concat",
     {{2, 3}, {2, 1}},
     [](In x) {
       return concat({x[0], x[1], x[0]}, 1);
     }},
};
}  // namespace
}  // namespace tapegrad
