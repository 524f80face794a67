// Reductions. An axis reduction views x as (outer, n, inner) and reduces the
// middle axis; sum and mean copy the gradient back to every element (a copy
// gate seen from the other side), max routes it to the arg-max.
#include <fmt/format.h>

#include <cstring>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {
namespace {

using detail::grads_of;
using detail::values_of;

struct Split {
  std::int64_t outer = 1, n = 1, inner = 1;
};
Split split(const Shape& s, int axis) {
  Split r;
  for (int d = 0; d < s.rank(); ++d) {
    if (d < axis)
      r.outer *= s[d];
    else if (d == axis)
      r.n = s[d];
    else
      r.inner *= s[d];
  }
  return r;
}

// A reduction's attributes: sum and mean scale by 1 and 1/n; max has no
// scale. keepdims is what the caller asked (the output's shape has it).
struct ReduceAttrs {
  int axis = -1;  // -1: all elements
  double scale = 1.0;
  bool keepdims = false;
};

Split sum_split(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const Shape& xs = tape.tensor_node(node.in[0]).shape;
  const int axis = node.attrs.get<ReduceAttrs>().axis;
  return axis < 0 ? Split{1, xs.numel(), 1} : split(xs, axis);
}

void sum_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const Split sp = sum_split(tape, t);
  const double scale = node.attrs.get<ReduceAttrs>().scale;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    T* gx = grads_of<T>(tape, ix);
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t k = 0; k < sp.n; ++k)
        for (std::int64_t i = 0; i < sp.inner; ++i)
          gx[(o * sp.n + k) * sp.inner + i] += g[o * sp.inner + i] * static_cast<T>(scale);
  });
}
void sum_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const Split sp = sum_split(tape, t);
  const double scale = node.attrs.get<ReduceAttrs>().scale;
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, ix);
    T* o = values_of<T>(tape, t);
    for (std::int64_t a = 0; a < sp.outer; ++a) {
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        double acc = 0;  // accumulate in double: float sums of many terms drift
        for (std::int64_t k = 0; k < sp.n; ++k) acc += in[(a * sp.n + k) * sp.inner + i];
        o[a * sp.inner + i] = static_cast<T>(acc * scale);
      }
    }
  });
}
const TensorOpDef kSum{.name = "sum",
                       .forward = &sum_forward,
                       .backward = &sum_backward,
                       .jvp = &detail::linear_jvp,
                       .curvature = &no_curvature,
                       .gate = Gate::copies,
                       .note = "the gradient to every element"};
const TensorOpDef kMean{.name = "mean",
                        .forward = &sum_forward,
                        .backward = &sum_backward,
                        .jvp = &detail::linear_jvp,
                        .curvature = &no_curvature,
                        .gate = Gate::copies,
                        .note = "the gradient / n to every element"};

Tensor reduce_sum(const TensorOpDef& def, const Tensor& x, int axis, bool keepdims, bool mean,
                  Site where) {
  Tape& tape = x.checked(def.name);
  const Shape& xs = x.shape();
  int ax = -1;
  Shape out;
  Split sp{1, xs.numel(), 1};
  if (axis != kMaxRank) {
    ax = xs.axis(axis, def.name);
    if (xs.rank() == 0)
      throw Error(fmt::format("{}: cannot reduce along an axis of a rank-0 tensor", def.name));
    out = xs.reduced(ax, keepdims);
    sp = split(xs, ax);
  }
  if (mean && sp.n == 0)
    throw Error(fmt::format("{}: mean over an empty axis of shape {}", def.name, xs.str()));
  const double scale = mean ? 1.0 / static_cast<double>(sp.n) : 1.0;
  const std::uint32_t ix = x.index();
  const std::uint32_t t = tape.push_tensor(&def, out, x.dtype(), {ix}, where);
  tape.tensor_node(t).attrs.set(ReduceAttrs{.axis = ax, .scale = scale, .keepdims = keepdims});
  def.forward(tape, t);
  return {tape, t};
}

// saved: int64 arg-max index (along the axis) per output element
void max_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const Split sp = split(tape.tensor_node(ix).shape, node.attrs.get<ReduceAttrs>().axis);
  const auto* arg = static_cast<const std::int64_t*>(node.saved.data());
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    T* gx = grads_of<T>(tape, ix);
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t j = o * sp.inner + i;
        gx[(o * sp.n + arg[j]) * sp.inner + i] += g[j];
      }
  });
}
void max_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const Split sp = split(tape.tensor_node(ix).shape, node.attrs.get<ReduceAttrs>().axis);
  auto* arg = static_cast<std::int64_t*>(node.saved.data());
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, ix);
    T* o = values_of<T>(tape, t);
    for (std::int64_t a = 0; a < sp.outer; ++a)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        std::int64_t best = 0;
        T bv = in[a * sp.n * sp.inner + i];
        for (std::int64_t k = 1; k < sp.n; ++k) {
          const T v = in[(a * sp.n + k) * sp.inner + i];
          if (v > bv) bv = v, best = k;  // strict: ties keep the first
        }
        o[a * sp.inner + i] = bv;
        arg[a * sp.inner + i] = best;
      }
  });
}
// Forward mode: the tangent of the arg-max element (routes, like the gradient).
void max_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& node = tape.tensor_node(t);
  const std::uint32_t ix = node.in[0];
  const Split sp = split(tape.tensor_node(ix).shape, node.attrs.get<ReduceAttrs>().axis);
  const auto* arg = static_cast<const std::int64_t*>(node.saved.data());
  dispatch_dtype(node.dtype, [&](auto z) {
    using T = decltype(z);
    const T* tx = tg.of<T>(ix);
    T* ty = tg.out<T>(t);
    for (std::int64_t o = 0; o < sp.outer; ++o)
      for (std::int64_t i = 0; i < sp.inner; ++i) {
        const std::int64_t j = o * sp.inner + i;
        ty[j] = tx[(o * sp.n + arg[j]) * sp.inner + i];
      }
  });
}
const TensorOpDef kMax{.name = "max",
                       .forward = &max_forward,
                       .backward = &max_backward,
                       .jvp = &max_jvp,
                       .curvature = &no_curvature,
                       .gate = Gate::routes};

}  // namespace

Tensor sum(const Tensor& x, Site where) {
  return reduce_sum(kSum, x, kMaxRank, false, false, where);
}
Tensor sum(const Tensor& x, int axis, bool keepdims, Site where) {
  return reduce_sum(kSum, x, axis, keepdims, false, where);
}
Tensor mean(const Tensor& x, Site where) {
  return reduce_sum(kMean, x, kMaxRank, false, true, where);
}
Tensor mean(const Tensor& x, int axis, bool keepdims, Site where) {
  return reduce_sum(kMean, x, axis, keepdims, true, where);
}

Tensor max(const Tensor& x, int axis, bool keepdims, Site where) {
  Tape& tape = x.checked("max");
  const Shape& xs = x.shape();
  if (xs.rank() == 0) throw Error("max: cannot reduce along an axis of a rank-0 tensor");
  const int ax = xs.axis(axis, "max");
  const Split sp = split(xs, ax);
  if (sp.n == 0) throw Error(fmt::format("max: empty axis {} of shape {}", ax, xs.str()));
  const std::uint32_t ix = x.index();
  const std::uint32_t t = tape.push_tensor(&kMax, xs.reduced(ax, keepdims), x.dtype(), {ix}, where);
  TensorNode& node = tape.tensor_node(t);
  node.attrs.set(ReduceAttrs{.axis = ax, .scale = 1.0, .keepdims = keepdims});
  node.saved = tape.acquire(static_cast<std::size_t>(sp.outer * sp.inner) * sizeof(std::int64_t));
  max_forward(tape, t);
  return {tape, t};
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
const OpCheckRegistrar kReduceChecks{
    {"sum", {{2, 3}}, [](In x) { return sum(x[0]); }},
    {"sum", {{2, 3, 4}}, [](In x) { return sum(x[0], 1); }},
    {"sum", {{2, 3}}, [](In x) { return sum(x[0], -1, true); }},
    {"mean", {{3, 4}}, [](In x) { return mean(x[0]); }},
    {"mean", {{3, 4}}, [](In x) { return mean(x[0], 0, true); }},
    {"max", {{3, 4}}, [](In x) { return max(x[0], 1); }},
    {"max", {{2, 3, 2}}, [](In x) { return max(x[0], 0, true); }},
};
}  // namespace
}  // namespace tapegrad
