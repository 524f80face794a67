// Fused loss ops. Each is one engine op with its own backward,
// checked against finite differences like every other op.
// Dimension letters: N rows (samples), I inputs, O outputs, C classes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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

// ---- softmax cross-entropy on logits: mean_r (lse(z_r) - z_r[label_r]) ----
// saved: softmax probabilities (N*C of T), then the labels (N int32)
void sce_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0];
  const std::int64_t n = tape.tensor_node(iz).shape[0], c = tape.tensor_node(iz).shape[1];
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T scale = static_cast<const T*>(tape.tensor_node(t).grad)[0] / static_cast<T>(n);
    const T* p = static_cast<const T*>(tape.tensor_node(t).saved.data());
    const auto* labels = reinterpret_cast<const std::int32_t*>(p + n * c);
    T* gz = grads_of<T>(tape, iz);
    for (std::int64_t r = 0; r < n; ++r) {
      for (std::int64_t k = 0; k < c; ++k) gz[r * c + k] += scale * p[r * c + k];
      gz[r * c + labels[r]] -= scale;
    }
  });
}
void sce_forward(Tape& tape, std::uint32_t t);
void sce_jvp(Tape& tape, std::uint32_t t, Tangents& tg);
void sce_curvature(Tape& tape, std::uint32_t t, Tangents& tg);
const TensorOpDef kSoftmaxCE{.name = "softmax_cross_entropy",
                             .forward = &sce_forward,
                             .backward = &sce_backward,
                             .jvp = &sce_jvp,
                             .curvature = &sce_curvature};

// ---- binary cross-entropy on logits, mean over elements ----
// The sigmoid without overflow for either sign of z.
template <class T>
T sigmoid_of(T z) {
  return z >= 0 ? T(1) / (T(1) + std::exp(-z)) : std::exp(z) / (T(1) + std::exp(z));
}
// loss = max(z,0) - z y + log(1 + e^-|z|); d/dz = s(z) - y; d/dy = -z
void bce_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0], iy = node.in[1];
  const bool need_z = wants_grad(tape, t, 0), need_y = wants_grad(tape, t, 1);
  dispatch_dtype(node.dtype, [&](auto zz) {
    using T = decltype(zz);
    const std::int64_t count = tape.tensor_node(iz).shape.numel();
    const T scale = static_cast<const T*>(tape.tensor_node(t).grad)[0] / static_cast<T>(count);
    const T* z = values_of<T>(tape, iz);
    const T* y = values_of<T>(tape, iy);
    if (need_z) {
      T* gz = grads_of<T>(tape, iz);
      for (std::int64_t i = 0; i < count; ++i) {
        gz[i] += scale * (sigmoid_of(z[i]) - y[i]);
      }
    }
    if (need_y) {
      T* gy = grads_of<T>(tape, iy);
      for (std::int64_t i = 0; i < count; ++i) gy[i] -= scale * z[i];
    }
  });
}
void bce_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  dispatch_dtype(node.dtype, [&](auto zz) {
    using T = decltype(zz);
    const T* z = values_of<T>(tape, node.in[0]);
    const T* y = values_of<T>(tape, node.in[1]);
    const std::int64_t count = tape.tensor_node(node.in[0]).shape.numel();
    double total = 0;
    for (std::int64_t i = 0; i < count; ++i)
      total += std::max<double>(z[i], 0) - static_cast<double>(z[i]) * y[i] +
               std::log1p(std::exp(-std::fabs(static_cast<double>(z[i]))));
    values_of<T>(tape, t)[0] = static_cast<T>(total / static_cast<double>(count));
  });
}
void bce_jvp(Tape& tape, std::uint32_t t, Tangents& tg);
void bce_curvature(Tape& tape, std::uint32_t t, Tangents& tg);
const TensorOpDef kBce{.name = "bce_with_logits",
                       .forward = &bce_forward,
                       .backward = &bce_backward,
                       .jvp = &bce_jvp,
                       .curvature = &bce_curvature};

// ---- softmax over the last axis: dx = y (g - sum(g y)) ----
void softmax_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const std::int64_t c = node.shape[node.shape.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : node.shape.numel() / c;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* y = values_of<T>(tape, t);
    T* gx = grads_of<T>(tape, ix);
    for (std::int64_t r = 0; r < rows; ++r) {
      T dot = 0;
      for (std::int64_t k = 0; k < c; ++k) dot += g[r * c + k] * y[r * c + k];
      for (std::int64_t k = 0; k < c; ++k) gx[r * c + k] += y[r * c + k] * (g[r * c + k] - dot);
    }
  });
}
void softmax_forward(Tape& tape, std::uint32_t t);
void softmax_jvp(Tape& tape, std::uint32_t t, Tangents& tg);
void softmax_curvature(Tape& tape, std::uint32_t t, Tangents& tg);
const TensorOpDef kSoftmax{.name = "softmax",
                           .forward = &softmax_forward,
                           .backward = &softmax_backward,
                           .jvp = &softmax_jvp,
                           .curvature = &softmax_curvature};

// Row-wise stable softmax of in (rows x c) into out; returns the row's log-sum-exp via lse.
template <class T>
void softmax_rows(const T* in, T* out, std::int64_t rows, std::int64_t c, T* lse) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * c;
    T* y = out + r * c;
    const T m = *std::max_element(x, x + c);
    T s = 0;
    for (std::int64_t k = 0; k < c; ++k) s += (y[k] = std::exp(x[k] - m));
    for (std::int64_t k = 0; k < c; ++k) y[k] /= s;
    if (lse) lse[r] = m + std::log(s);
  }
}

void sce_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0];
  const std::int64_t n = tape.tensor_node(iz).shape[0], c = tape.tensor_node(iz).shape[1];
  dispatch_dtype(node.dtype, [&](auto zz) {
    using T = decltype(zz);
    T* p = static_cast<T*>(tape.tensor_node(t).saved.data());
    const auto* lab = reinterpret_cast<const std::int32_t*>(p + n * c);
    const T* z = values_of<T>(tape, iz);
    double total = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      T lse;
      softmax_rows(z + r * c, p + r * c, 1, c, &lse);
      total += static_cast<double>(lse - z[r * c + lab[r]]);
    }
    values_of<T>(tape, t)[0] = static_cast<T>(total / static_cast<double>(n));
  });
}

void softmax_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::int64_t c = node.shape[node.shape.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : node.shape.numel() / c;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    softmax_rows<T>(values_of<T>(tape, node.in[0]), values_of<T>(tape, t), rows, c, nullptr);
  });
}

// ---- forward mode and curvature of the fused ops ----

// Softmax cross-entropy: dL/dz = (p - onehot) / N, so t_L = sum((p - onehot) t_z) / N.
void sce_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0];
  const std::int64_t n = tape.tensor_node(iz).shape[0], c = tape.tensor_node(iz).shape[1];
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* p = static_cast<const T*>(tape.tensor_node(t).saved.data());
    const auto* labels = reinterpret_cast<const std::int32_t*>(p + n * c);
    const T* tz = tg.of<T>(iz);
    double acc = 0;
    for (std::int64_t r = 0; r < n; ++r) {
      for (std::int64_t k = 0; k < c; ++k) acc += static_cast<double>(p[r * c + k]) * tz[r * c + k];
      acc -= tz[r * c + labels[r]];
    }
    tg.out<T>(t)[0] = static_cast<T>(acc / static_cast<double>(n));
  });
}
// The tangent of dL/dz = g (p - onehot) / N is g t_p / N, t_p = p (t_z - <p, t_z>) per row.
void sce_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0];
  const std::int64_t n = tape.tensor_node(iz).shape[0], c = tape.tensor_node(iz).shape[1];
  if (!wants_grad(tape, t, 0)) return;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T scale = tg.first_grad<T>(t)[0] / static_cast<T>(n);
    const T* p = static_cast<const T*>(tape.tensor_node(t).saved.data());
    const T* tz = tg.of<T>(iz);
    T* hz = grads_of<T>(tape, iz);
    for (std::int64_t r = 0; r < n; ++r) {
      T dot = 0;
      for (std::int64_t k = 0; k < c; ++k) dot += p[r * c + k] * tz[r * c + k];
      for (std::int64_t k = 0; k < c; ++k)
        hz[r * c + k] += scale * p[r * c + k] * (tz[r * c + k] - dot);
    }
  });
}

// Binary cross-entropy: dL/dz = (s(z) - y) / n, dL/dy = -z / n.
void bce_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0], iy = node.in[1];
  dispatch_dtype(node.dtype, [&](auto zz) {
    using T = decltype(zz);
    const std::int64_t count = tape.tensor_node(iz).shape.numel();
    const T* z = values_of<T>(tape, iz);
    const T* y = values_of<T>(tape, iy);
    const T* tz = tg.of<T>(iz);
    const T* ty = tg.of<T>(iy);
    double acc = 0;
    for (std::int64_t i = 0; i < count; ++i)
      acc +=
          static_cast<double>(sigmoid_of(z[i]) - y[i]) * tz[i] - static_cast<double>(z[i]) * ty[i];
    tg.out<T>(t)[0] = static_cast<T>(acc / static_cast<double>(count));
  });
}
// Second partials (times n): zz = s(z)(1 - s(z)), zy = -1, yy = 0.
void bce_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t iz = node.in[0], iy = node.in[1];
  const bool need_z = wants_grad(tape, t, 0), need_y = wants_grad(tape, t, 1);
  dispatch_dtype(node.dtype, [&](auto zz) {
    using T = decltype(zz);
    const std::int64_t count = tape.tensor_node(iz).shape.numel();
    const T scale = tg.first_grad<T>(t)[0] / static_cast<T>(count);
    const T* z = values_of<T>(tape, iz);
    const T* tz = tg.of<T>(iz);
    const T* ty = tg.of<T>(iy);
    if (need_z) {
      T* hz = grads_of<T>(tape, iz);
      for (std::int64_t i = 0; i < count; ++i) {
        const T s = sigmoid_of(z[i]);
        hz[i] += scale * (s * (T(1) - s) * tz[i] - ty[i]);
      }
    }
    if (need_y) {
      T* hy = grads_of<T>(tape, iy);
      for (std::int64_t i = 0; i < count; ++i) hy[i] -= scale * tz[i];
    }
  });
}

// Softmax: t_y = y (t_x - <y, t_x>) per row.
void softmax_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::int64_t c = node.shape[node.shape.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : node.shape.numel() / c;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* y = values_of<T>(tape, t);
    const T* tx = tg.of<T>(tape.tensor_node(t).in[0]);
    T* ty = tg.out<T>(t);
    for (std::int64_t r = 0; r < rows; ++r) {
      T dot = 0;
      for (std::int64_t k = 0; k < c; ++k) dot += y[r * c + k] * tx[r * c + k];
      for (std::int64_t k = 0; k < c; ++k) ty[r * c + k] = y[r * c + k] * (tx[r * c + k] - dot);
    }
  });
}
// The tangent of dx = y (g - <g, y>) with g fixed:
// t_y (g - <g, y>) - y <g, t_y>.
void softmax_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const std::int64_t c = node.shape[node.shape.rank() - 1];
  const std::int64_t rows = c == 0 ? 0 : node.shape.numel() / c;
  if (!wants_grad(tape, t, 0)) return;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const T* y = values_of<T>(tape, t);
    const T* ty = tg.of<T>(t);
    T* hx = grads_of<T>(tape, ix);
    for (std::int64_t r = 0; r < rows; ++r) {
      T gy = 0, gty = 0;
      for (std::int64_t k = 0; k < c; ++k) {
        gy += g[r * c + k] * y[r * c + k];
        gty += g[r * c + k] * ty[r * c + k];
      }
      for (std::int64_t k = 0; k < c; ++k)
        hx[r * c + k] += ty[r * c + k] * (g[r * c + k] - gy) - y[r * c + k] * gty;
    }
  });
}

}  // namespace

Tensor softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> labels,
                             Site where) {
  Tape& tape = logits.checked("softmax_cross_entropy");
  const Shape s = logits.shape();
  if (s.rank() != 2 || s[1] == 0)
    throw Error(
        fmt::format("softmax_cross_entropy: logits must be (N,C) with C >= 1, got {}", s.str()));
  const std::int64_t n = s[0], c = s[1];
  if (static_cast<std::int64_t>(labels.size()) != n)
    throw Error(fmt::format("softmax_cross_entropy: {} labels for {} rows of logits {}",
                            labels.size(), n, s.str()));
  for (std::size_t r = 0; r < labels.size(); ++r)
    if (labels[r] < 0 || labels[r] >= c)
      throw Error(fmt::format("softmax_cross_entropy: label {} of row {} is outside [0, {})",
                              labels[r], r, c));
  if (n == 0) throw Error("softmax_cross_entropy: no rows (empty batch)");
  const std::uint32_t t =
      tape.push_tensor(&kSoftmaxCE, Shape{}, logits.dtype(), {logits.index()}, where);
  TensorNode& node = tape.tensor_node(t);
  const std::size_t es = dtype_size(node.dtype);
  node.saved = tape.acquire(static_cast<std::size_t>(n * c) * es +
                            static_cast<std::size_t>(n) * sizeof(std::int32_t));
  std::memcpy(static_cast<char*>(node.saved.data()) + static_cast<std::size_t>(n * c) * es,
              labels.data(), static_cast<std::size_t>(n) * sizeof(std::int32_t));
  sce_forward(tape, t);
  return {tape, t};
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Site where) {
  Tape& tape = logits.checked("bce_with_logits");
  const std::uint32_t iz = arg(tape, logits, "bce_with_logits"),
                      iy = arg(tape, targets, "bce_with_logits");
  if (!(logits.shape() == targets.shape()) || logits.dtype() != targets.dtype())
    throw Error(
        fmt::format("bce_with_logits: logits {} and targets {} must have the same shape "
                    "and dtype",
                    logits.shape().str(), targets.shape().str()));
  if (logits.numel() == 0) throw Error("bce_with_logits: empty input");
  const std::uint32_t t = tape.push_tensor(&kBce, Shape{}, logits.dtype(), {iz, iy}, where);
  bce_forward(tape, t);
  return {tape, t};
}

Tensor softmax(const Tensor& x, Site where) {
  Tape& tape = x.checked("softmax");
  if (x.rank() < 1) throw Error("softmax: needs rank >= 1");
  const std::uint32_t t = tape.push_tensor(&kSoftmax, x.shape(), x.dtype(), {x.index()}, where);
  softmax_forward(tape, t);
  return {tape, t};
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
const std::int32_t kLabels[] = {2, 0, 3};
const OpCheckRegistrar kLossChecks{
    {"softmax", {{3, 4}}, [](In x) { return softmax(x[0]); }},
    {"softmax_cross_entropy",
     {{3, 4}},
     [](In x) { return softmax_cross_entropy(x[0], kLabels); },
     -3,
     3},
    {"bce_with_logits",
     {{2, 3}, {2, 3}},
     [](In x) { return bce_with_logits(x[0], sigmoid(x[1])); },
     -3,
     3},
};
}  // namespace
}  // namespace tapegrad
