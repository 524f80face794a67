// Binary elementwise operations. Each op is one rule struct: f (the forward)
// and its local partials side by side. They broadcast; their backward walks
// the same index pattern and so sums the gradient over broadcast axes.
// (Unary ops live in unary.cpp.)
#include <fmt/format.h>

#include <cmath>

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

// ---- binary rules: the op table's (math_rules.hpp), shared with Scalar ----

template <ScalarOp O>
struct TableRule {
  using R = detail::Rule<O>;
  template <class T>
  static T f(T a, T b) {
    return R::f(a, b);
  }
  template <class T>
  static T da(T a, T b) {
    return R::da(a, b);
  }
  template <class T>
  static T db(T a, T b) {
    return R::db(a, b);
  }
  // second partials {d2/da2, d2/dadb, d2/db2}
  template <class T>
  static void d2(T a, T b, T& aa, T& ab, T& bb) {
    const detail::Curv<T> c = R::d2(a, b, R::f(a, b));
    aa = c.aa, ab = c.ab, bb = c.bb;
  }
};
using AddRule = TableRule<ScalarOp::add>;
using SubRule = TableRule<ScalarOp::sub>;
using MulRule = TableRule<ScalarOp::mul>;
using DivRule = TableRule<ScalarOp::div>;
using MaxRule = TableRule<ScalarOp::max>;
using MinRule = TableRule<ScalarOp::min>;

template <class Rule>
void binary_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ia = n.in[0], ib = n.in[1];
  std::int64_t sa[kMaxRank], sb[kMaxRank];
  detail::broadcast_strides(tape.tensor_node(ia).shape, n.shape, sa);
  detail::broadcast_strides(tape.tensor_node(ib).shape, n.shape, sb);
  const bool need_a = wants_grad(tape, t, 0), need_b = wants_grad(tape, t, 1);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* a = values_of<T>(tape, ia);
    const T* b = values_of<T>(tape, ib);
    T* ga = need_a ? grads_of<T>(tape, ia) : nullptr;
    T* gb = need_b ? grads_of<T>(tape, ib) : nullptr;
    const Shape& out = tape.tensor_node(t).shape;
    if (tape.tensor_node(ia).shape == out && tape.tensor_node(ib).shape == out) {
      const std::int64_t count = out.numel();
      if (ga)
        for (std::int64_t i = 0; i < count; ++i) ga[i] += g[i] * Rule::da(a[i], b[i]);
      if (gb)
        for (std::int64_t i = 0; i < count; ++i) gb[i] += g[i] * Rule::db(a[i], b[i]);
      return;
    }
    detail::for_each_broadcast(out, sa, sb, [&](std::int64_t o, std::int64_t i, std::int64_t j) {
      if (ga) ga[i] += g[o] * Rule::da(a[i], b[j]);
      if (gb) gb[j] += g[o] * Rule::db(a[i], b[j]);
    });
  });
}

template <class Rule>
void binary_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ia = n.in[0], ib = n.in[1];
  std::int64_t sa[kMaxRank], sb[kMaxRank];
  detail::broadcast_strides(tape.tensor_node(ia).shape, n.shape, sa);
  detail::broadcast_strides(tape.tensor_node(ib).shape, n.shape, sb);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* a = values_of<T>(tape, ia);
    const T* b = values_of<T>(tape, ib);
    T* o = values_of<T>(tape, t);
    const Shape& out = tape.tensor_node(t).shape;
    if (tape.tensor_node(ia).shape == out && tape.tensor_node(ib).shape == out) {
      for (std::int64_t i = 0, count = out.numel(); i < count; ++i) o[i] = Rule::f(a[i], b[i]);
      return;
    }
    detail::for_each_broadcast(out, sa, sb, [&](std::int64_t k, std::int64_t i, std::int64_t j) {
      o[k] = Rule::f(a[i], b[j]);
    });
  });
}

// Forward mode: t_y = df/da t_a + df/db t_b (broadcast like the forward).
template <class Rule>
void binary_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ia = n.in[0], ib = n.in[1];
  std::int64_t sa[kMaxRank], sb[kMaxRank];
  detail::broadcast_strides(tape.tensor_node(ia).shape, n.shape, sa);
  detail::broadcast_strides(tape.tensor_node(ib).shape, n.shape, sb);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* a = values_of<T>(tape, ia);
    const T* b = values_of<T>(tape, ib);
    const T* ta = tg.of<T>(ia);
    const T* tb = tg.of<T>(ib);
    T* ty = tg.out<T>(t);
    detail::for_each_broadcast(
        tape.tensor_node(t).shape, sa, sb, [&](std::int64_t o, std::int64_t i, std::int64_t j) {
          ty[o] = Rule::da(a[i], b[j]) * ta[i] + Rule::db(a[i], b[j]) * tb[j];
        });
  });
}

// The curvature term of a curved binary op (mul, div): with second partials
// aa, ab, bb, h_a += g (aa t_a + ab t_b) and h_b += g (ab t_a + bb t_b),
// summed over broadcast axes like the gradient.
template <class Rule>
void binary_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ia = n.in[0], ib = n.in[1];
  std::int64_t sa[kMaxRank], sb[kMaxRank];
  detail::broadcast_strides(tape.tensor_node(ia).shape, n.shape, sa);
  detail::broadcast_strides(tape.tensor_node(ib).shape, n.shape, sb);
  const bool need_a = wants_grad(tape, t, 0), need_b = wants_grad(tape, t, 1);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const T* a = values_of<T>(tape, ia);
    const T* b = values_of<T>(tape, ib);
    const T* ta = tg.of<T>(ia);
    const T* tb = tg.of<T>(ib);
    T* ha = need_a ? grads_of<T>(tape, ia) : nullptr;
    T* hb = need_b ? grads_of<T>(tape, ib) : nullptr;
    detail::for_each_broadcast(tape.tensor_node(t).shape, sa, sb,
                               [&](std::int64_t o, std::int64_t i, std::int64_t j) {
                                 T aa, ab, bb;
                                 Rule::d2(a[i], b[j], aa, ab, bb);
                                 if (ha) ha[i] += g[o] * (aa * ta[i] + ab * tb[j]);
                                 if (hb) hb[j] += g[o] * (ab * ta[i] + bb * tb[j]);
                               });
  });
}

template <class Rule>
Tensor binary(const TensorOpDef& def, const Tensor& x, const Tensor& y, Site where) {
  Tape& tape = x.checked(def.name);
  const std::uint32_t ia = arg(tape, x, def.name), ib = arg(tape, y, def.name);
  if (x.dtype() != y.dtype())
    throw Error(fmt::format("{}: dtypes differ ({} and {}); convert one operand first", def.name,
                            dtype_name(x.dtype()), dtype_name(y.dtype())));
  const Shape out = broadcast_shapes(x.shape(), y.shape(), def.name);
  const std::uint32_t t = tape.push_tensor(&def, out, x.dtype(), {ia, ib}, where);
  def.forward(tape, t);
  return {tape, t};
}

// An element-wise binary op's definition from its rule; curved ops (mul,
// div) pass their curvature rule, the (piecewise) linear ones none.
template <class Rule>
constexpr TensorOpDef binary_def(const char* name, Gate gate, const char* note = nullptr,
                                 CurvatureFn curvature = &no_curvature) {
  return {.name = name,
          .forward = &binary_forward<Rule>,
          .backward = &binary_backward<Rule>,
          .jvp = &binary_jvp<Rule>,
          .curvature = curvature,
          .gate = gate,
          .note = note};
}
const TensorOpDef kAdd = binary_def<AddRule>("add", Gate::distributes);
const TensorOpDef kSub = binary_def<SubRule>("sub", Gate::distributes, "(negated to b)");
const TensorOpDef kMul =
    binary_def<MulRule>("mul", Gate::switches, nullptr, &binary_curvature<MulRule>);
const TensorOpDef kDiv =
    binary_def<DivRule>("div", Gate::none, nullptr, &binary_curvature<DivRule>);
const TensorOpDef kMaximum = binary_def<MaxRule>("maximum", Gate::routes);
const TensorOpDef kMinimum = binary_def<MinRule>("minimum", Gate::routes);
// atan2, hypot and fmod of two tensors, element by element.
template <ScalarOp O>
constexpr CurvatureFn table_curvature() {
  if constexpr (detail::Linear<detail::Rule<O>>)
    return &no_curvature;
  else
    return &binary_curvature<TableRule<O>>;
}
template <ScalarOp O>
const TensorOpDef& table_def() {
  static const TensorOpDef def =
      binary_def<TableRule<O>>(scalar_op_name(O), Gate::none, nullptr, table_curvature<O>());
  return def;
}
const TensorOpDef kConst{.name = "constant"};

// A rank-0 constant of x's dtype on x's tape.
Tensor constant_like(const Tensor& x, double c, Site where) {
  Tape& tape = x.checked("constant");
  const std::uint32_t t = tape.push_tensor(&kConst, Shape{}, x.dtype(), {}, where);
  dispatch_dtype(x.dtype(),
                 [&](auto z) { values_of<decltype(z)>(tape, t)[0] = static_cast<decltype(z)>(c); });
  return {tape, t};
}

}  // namespace

Tensor record_op(const TensorOpDef& def, std::initializer_list<Tensor> inputs, const Shape& out,
                 TensorAttrs attrs, Site where) {
  if (inputs.size() == 0 || inputs.size() > 3)
    throw Error(fmt::format("{}: a recorded op takes 1 to 3 tensor inputs, got {}", def.name,
                            inputs.size()));
  if (!def.forward) throw Error(fmt::format("{}: the op definition has no forward rule", def.name));
  Tape& tape = inputs.begin()->checked(def.name);
  std::uint32_t ids[3] = {kNone, kNone, kNone};
  std::size_t k = 0;
  for (const Tensor& x : inputs) {
    ids[k++] = arg(tape, x, def.name);
    if (x.dtype() != inputs.begin()->dtype())
      throw Error(fmt::format("{}: inputs must share one dtype", def.name));
  }
  const DType dt = inputs.begin()->dtype();
  const std::uint32_t t = k == 1 ? tape.push_tensor(&def, out, dt, {ids[0]}, where)
                          : k == 2
                              ? tape.push_tensor(&def, out, dt, {ids[0], ids[1]}, where)
                              : tape.push_tensor(&def, out, dt, {ids[0], ids[1], ids[2]}, where);
  tape.tensor_node(t).attrs = attrs;
  def.forward(tape, t);
  return {tape, t};
}

Tensor atan2(const Tensor& a, const Tensor& b, Site where) {
  return binary<TableRule<ScalarOp::atan2>>(table_def<ScalarOp::atan2>(), a, b, where);
}
Tensor hypot(const Tensor& a, const Tensor& b, Site where) {
  return binary<TableRule<ScalarOp::hypot>>(table_def<ScalarOp::hypot>(), a, b, where);
}
Tensor fmod(const Tensor& a, const Tensor& b, Site where) {
  return binary<TableRule<ScalarOp::fmod>>(table_def<ScalarOp::fmod>(), a, b, where);
}
Tensor add(const Tensor& a, const Tensor& b, Site where) {
  return binary<AddRule>(kAdd, a, b, where);
}
Tensor sub(const Tensor& a, const Tensor& b, Site where) {
  return binary<SubRule>(kSub, a, b, where);
}
Tensor mul(const Tensor& a, const Tensor& b, Site where) {
  return binary<MulRule>(kMul, a, b, where);
}
Tensor div(const Tensor& a, const Tensor& b, Site where) {
  return binary<DivRule>(kDiv, a, b, where);
}
Tensor maximum(const Tensor& a, const Tensor& b, Site where) {
  return binary<MaxRule>(kMaximum, a, b, where);
}
Tensor minimum(const Tensor& a, const Tensor& b, Site where) {
  return binary<MinRule>(kMinimum, a, b, where);
}

Tensor operator+(detail::T a, double c) {
  return add(a.v, constant_like(a.v, c, a.where), a.where);
}
Tensor operator+(double c, detail::T a) {
  return add(constant_like(a.v, c, a.where), a.v, a.where);
}
Tensor operator-(detail::T a, double c) {
  return sub(a.v, constant_like(a.v, c, a.where), a.where);
}
Tensor operator-(double c, detail::T a) {
  return sub(constant_like(a.v, c, a.where), a.v, a.where);
}
Tensor operator*(detail::T a, double c) {
  return mul(a.v, constant_like(a.v, c, a.where), a.where);
}
Tensor operator*(double c, detail::T a) {
  return mul(constant_like(a.v, c, a.where), a.v, a.where);
}
Tensor operator/(detail::T a, double c) {
  return div(a.v, constant_like(a.v, c, a.where), a.where);
}
Tensor operator/(double c, detail::T a) {
  return div(constant_like(a.v, c, a.where), a.v, a.where);
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
std::vector<OpCheckCase> binary_cases(const std::string& op,
                                      std::function<Tensor(const Tensor&, const Tensor&)> f,
                                      double lo, double hi) {
  std::vector<OpCheckCase> v;
  for (const auto& [a, b] : std::vector<std::pair<Shape, Shape>>{
           {{3}, {3}}, {{2, 3}, {3}}, {{2, 3}, {2, 1}}, {{2, 1, 4}, {3, 1}}, {{}, {2, 2}}})
    v.push_back({op, {a, b}, [f](In x) { return f(x[0], x[1]); }, lo, hi, 0});
  return v;
}
const OpCheckRegistrar kElementwiseChecks = [] {
  std::vector<OpCheckCase> all;
  for (auto&& v :
       {binary_cases(
            "add", [](const Tensor&a, const Tensor&b) { return add(a, b); }, -2, 2),
        binary_cases(
            "sub", [](const Tensor&a, const Tensor&b) { return sub(a, b); }, -2, 2),
        binary_cases(
            "mul", [](const Tensor&a, const Tensor&b) { return mul(a, b); }, -2, 2),
        binary_cases(
            "div", [](const Tensor&a, const Tensor&b) { return div(a, b); }, 0.5, 2),
        // a shifted second input keeps ties (kinks of the router) away
        binary_cases(
            "maximum", [](const Tensor&a, const Tensor&b) { return maximum(a, b + 0.0137); }, -2,
            2),
        binary_cases(
            "minimum", [](const Tensor&a, const Tensor&b) { return minimum(a, b - 0.0137); }, -2,
            2),
        binary_cases(
            "atan2", [](const Tensor&a, const Tensor&b) { return atan2(a, b); }, -2, 2),
        binary_cases(
            "hypot", [](const Tensor&a, const Tensor&b) { return hypot(a, b); }, -2, 2),
        // a, b in [1, 2): the quotient 0.3 a + 2.2 stays in [2.5, 2.8), away from fmod's jumps
        binary_cases(
            "fmod", [](const Tensor&a, const Tensor&b) { return fmod(a * 0.3 * b + b * 2.2, b); },
            1, 2)})
    all.insert(all.end(), v.begin(), v.end());
  for (const OpCheckCase& c : all) register_op_check(c);
  return OpCheckRegistrar{};
}();
}  // namespace
}  // namespace tapegrad
