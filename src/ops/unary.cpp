// Unary elementwise operations, and a Scalar scaling a tensor. Each op is one
// rule struct: f (the forward) and its local partial df/dx side by side.
#include <fmt/format.h>

#include <cmath>
#include <string_view>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {
namespace {

using detail::grads_for_write;
using detail::grads_of;
using detail::values_of;
using detail::wants_grad;

// ---- unary rules: f(x), and df/dx given x and y = f(x) ----

// The op table's rules (math_rules.hpp), shared with Scalar, with the
// tensor ops' extra parameter (unused).
template <ScalarOp O>
struct TableRule {
  using R = detail::Rule<O>;
  static constexpr const char* name = scalar_op_name(O);
  static constexpr Gate gate = R::gate;
  template <class T>
  static T f(T x, double) {
    return R::f(x);
  }
  template <class T>
  static T df(T x, T y, double) {
    return R::d(x, y);
  }
  template <class T>
  requires detail::Curved1<R>
  static T d2f(T x, T y, double) { return R::d2(x, y); }
};
struct PowRule {  // d x^p = p x^(p-1)
  static constexpr const char* name = "pow";
  static constexpr Gate gate = Gate::scales;
  template <class T>
  static T f(T x, double p) {
    return static_cast<T>(std::pow(x, static_cast<T>(p)));
  }
  template <class T>
  static T df(T x, T, double p) {
    return p == 0 ? T(0) : static_cast<T>(p * std::pow(x, static_cast<T>(p - 1)));
  }
  template <class T>
  static T d2f(T x, T, double p) {
    return p == 0 || p == 1 ? T(0)
                            : static_cast<T>(p * (p - 1) * std::pow(x, static_cast<T>(p - 2)));
  }
};
struct LeakyReluRule {  // 1 for x >= 0, slope below
  static constexpr const char* name = "leaky_relu";
  static constexpr Gate gate = Gate::scales;
  template <class T>
  static T f(T x, double s) {
    return x >= 0 ? x : static_cast<T>(s) * x;
  }
  template <class T>
  static T df(T x, T, double s) {
    return x >= 0 ? T(1) : static_cast<T>(s);
  }
};

// A unary op's one parameter: leaky_relu's slope, elu's alpha, a user
// function's id (0 for the others).
struct UnaryAttrs {
  double param = 0;
};

template <class Rule>
void unary_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.get<UnaryAttrs>().param;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    T beta;  // 0: the input's gradient is fresh, written rather than zeroed and added to
    T* gx = grads_for_write<T>(tape, ix, &beta);
    const std::int64_t count = tape.tensor_node(t).shape.numel();
    if (beta == T(0)) {
      for (std::int64_t i = 0; i < count; ++i) gx[i] = g[i] * Rule::df(x[i], y[i], alpha);
    } else {
      for (std::int64_t i = 0; i < count; ++i) gx[i] += g[i] * Rule::df(x[i], y[i], alpha);
    }
  });
}

template <class Rule>
void unary_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const double alpha = n.attrs.get<UnaryAttrs>().param;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, tape.tensor_node(t).in[0]);
    T* out = values_of<T>(tape, t);
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      out[i] = Rule::f(in[i], alpha);
  });
}

// Forward mode: t_y = f'(x) t_x.
template <class Rule>
void unary_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.get<UnaryAttrs>().param;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    const T* tx = tg.of<T>(ix);
    T* ty = tg.out<T>(t);
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      ty[i] = Rule::df(x[i], y[i], alpha) * tx[i];
  });
}

// The curvature term: h_x += g f''(x) t_x.
template <class Rule>
void unary_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.get<UnaryAttrs>().param;
  if (!wants_grad(tape, t, 0)) return;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    const T* tx = tg.of<T>(ix);
    T* hx = grads_of<T>(tape, ix);
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      hx[i] += g[i] * Rule::d2f(x[i], y[i], alpha) * tx[i];
  });
}

// Rules without d2f are linear or piecewise linear (neg, abs, relu, leaky_relu).
template <class Rule>
constexpr CurvatureFn curvature_of() {
  if constexpr (requires { Rule::template d2f<double>(0.0, 0.0, 0.0); })
    return &unary_curvature<Rule>;
  else
    return &no_curvature;
}

template <class Rule>
const TensorOpDef& unary_def() {
  static const TensorOpDef def{.name = Rule::name,
                               .forward = &unary_forward<Rule>,
                               .backward = &unary_backward<Rule>,
                               .jvp = &unary_jvp<Rule>,
                               .curvature = curvature_of<Rule>(),
                               .gate = Rule::gate == Gate::routes ? Gate::routes : Gate::none};
  return def;
}

// A user's ScalarFunction element-wise (userfn.hpp): alpha holds its id.
struct UserRule {
  static constexpr const char* name = "user function";
  static constexpr Gate gate = Gate::scales;
  template <class T>
  static T f(T x, double id) {
    return static_cast<T>(detail::user_function_value(id, x));
  }
  template <class T>
  static T df(T x, T y, double id) {
    return static_cast<T>(detail::user_function_derivative(id, x, y));
  }
  template <class T>
  static T d2f(T x, T y, double id) {  // throws, naming the function, when it has none
    return static_cast<T>(detail::user_function_second(id, x, y));
  }
};

template <class Rule>
Tensor unary(const Tensor& x, Site where, double alpha = 0.0) {
  const TensorOpDef& def = unary_def<Rule>();
  Tape& tape = x.checked(Rule::name);
  const std::uint32_t t = tape.push_tensor(&def, x.shape(), x.dtype(), {x.index()}, where);
  tape.tensor_node(t).attrs.set(UnaryAttrs{alpha});
  def.forward(tape, t);
  return {tape, t};
}

// ---- a Scalar scales a tensor: d(s x)/dx = s, d(s x)/ds = sum(g x) ----

void scale_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ix = n.in[0], s = n.scalar_in;
  double* adj = tape.scalar_adjoints();
  const double sv = tape.scalar_value(s);
  const bool need_x = wants_grad(tape, t, 0);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tensor_node(t).grad);
    const T* x = values_of<T>(tape, ix);
    const std::int64_t count = tape.tensor_node(t).shape.numel();
    double acc = 0;
    for (std::int64_t i = 0; i < count; ++i) acc += static_cast<double>(g[i]) * x[i];
    adj[s] += acc;
    if (need_x) {
      T* gx = grads_of<T>(tape, ix);
      for (std::int64_t i = 0; i < count; ++i) gx[i] += g[i] * static_cast<T>(sv);
    }
  });
}
void scale_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tensor_node(t);
  const double sv = tape.scalar_value(n.scalar_in);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, tape.tensor_node(t).in[0]);
    T* out = values_of<T>(tape, t);
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      out[i] = static_cast<T>(sv) * in[i];
  });
}
// t_y = t_s x + s t_x.
void scale_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const double sv = tape.scalar_value(n.scalar_in), ts = tg.scalar(n.scalar_in);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const std::uint32_t ix = tape.tensor_node(t).in[0];
    const T* x = values_of<T>(tape, ix);
    const T* tx = tg.of<T>(ix);
    T* ty = tg.out<T>(t);
    for (std::int64_t i = 0, count = tape.tensor_node(t).shape.numel(); i < count; ++i)
      ty[i] = static_cast<T>(ts) * x[i] + static_cast<T>(sv) * tx[i];
  });
}
// Bilinear in s and x: h_s += sum(g t_x), h_x += g t_s.
void scale_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tensor_node(t);
  const std::uint32_t ix = n.in[0], s = n.scalar_in;
  const double ts = tg.scalar(s);
  const bool need_x = wants_grad(tape, t, 0) && ts != 0.0, has_x = tg.has(ix);
  double* h = tape.scalar_adjoints();
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const std::int64_t count = tape.tensor_node(t).shape.numel();
    if (has_x) {
      const T* tx = tg.of<T>(ix);
      double acc = 0;
      for (std::int64_t i = 0; i < count; ++i) acc += static_cast<double>(g[i]) * tx[i];
      h[s] += acc;
    }
    if (need_x) {
      T* hx = grads_of<T>(tape, ix);
      for (std::int64_t i = 0; i < count; ++i) hx[i] += g[i] * static_cast<T>(ts);
    }
  });
}
const TensorOpDef kScale{.name = "scale",
                         .forward = &scale_forward,
                         .backward = &scale_backward,
                         .jvp = &scale_jvp,
                         .curvature = &scale_curvature,
                         .gate = Gate::switches};

}  // namespace

namespace detail {
TensorOpDef user_unary_def(const char* name) {
  return {.name = name,
          .forward = &unary_forward<UserRule>,
          .backward = &unary_backward<UserRule>,
          .jvp = &unary_jvp<UserRule>,
          .curvature = &unary_curvature<UserRule>};
}
TensorAttrs user_unary_attrs(std::uint32_t id) {
  return TensorAttrs::of(UnaryAttrs{static_cast<double>(id)});
}
}  // namespace detail

Tensor scale(const Scalar& s, const Tensor& x, Site where) {
  Tape& tape = x.checked("scale");
  if (&s.checked("scale") != &tape)
    throw Error("scale: the Scalar and the Tensor live on different tapes");
  const std::uint32_t t =
      tape.push_tensor(&kScale, x.shape(), x.dtype(), {x.index()}, where, s.index());
  scale_forward(tape, t);
  return {tape, t};
}

Tensor neg(const Tensor& x, Site where) { return unary<TableRule<ScalarOp::neg>>(x, where); }
#define TAPEGRAD_X(name, kind) TAPEGRAD_TENSOR_##kind(name)
#define TAPEGRAD_TENSOR_structural(name)
#define TAPEGRAD_TENSOR_unary_op(name)
#define TAPEGRAD_TENSOR_binary_op(name)
#define TAPEGRAD_TENSOR_binary_fn(name)
#define TAPEGRAD_TENSOR_unary_fn(name) \
  Tensor name(const Tensor& x, Site where) { return unary<TableRule<ScalarOp::name>>(x, where); }
TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
Tensor pow(const Tensor& x, double p, Site where) { return unary<PowRule>(x, where, p); }
Tensor leaky_relu(const Tensor& x, double slope, Site where) {
  return unary<LeakyReluRule>(x, where, slope);
}

}  // namespace tapegrad

// ---- registered checks (tapegrad gradcheck) ----
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {
using In = std::span<const Tensor>;
std::vector<OpCheckCase> unary_cases(const std::string& op, std::function<Tensor(const Tensor&)> f,
                                     double lo, double hi, double gap = 0) {
  std::vector<OpCheckCase> v;
  for (const Shape& s : {Shape{5}, Shape{2, 3}, Shape{2, 1, 3}})
    v.push_back({op, {s}, [f](In x) { return f(x[0]); }, lo, hi, gap});
  return v;
}
const OpCheckRegistrar kUnaryChecks = [] {
  std::vector<OpCheckCase> all;
  for (auto&& v :
       {unary_cases(
            "neg", [](const Tensor& x) { return -x; }, -2, 2),
        unary_cases(
            "exp", [](const Tensor& x) { return exp(x); }, -2, 2),
        unary_cases(
            "log", [](const Tensor& x) { return log(x); }, 0.2, 3),
        unary_cases(
            "sqrt", [](const Tensor& x) { return sqrt(x); }, 0.2, 3),
        unary_cases(
            "abs", [](const Tensor& x) { return abs(x); }, -2, 2, 0.05),
        unary_cases(
            "pow", [](const Tensor& x) { return pow(x, 3); }, -2, 2),
        unary_cases(
            "sigmoid", [](const Tensor& x) { return sigmoid(x); }, -4, 4),
        unary_cases(
            "tanh", [](const Tensor& x) { return tanh(x); }, -3, 3),
        unary_cases(
            "relu", [](const Tensor& x) { return relu(x); }, -2, 2, 0.05),
        unary_cases(
            "leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); }, -2, 2, 0.05),
        unary_cases(
            "scale", [](const Tensor& x) { return sum(x).item() * x; }, -1, 1),
        unary_cases(
            "sin", [](const Tensor& x) { return sin(x); }, -3, 3),
        unary_cases(
            "cos", [](const Tensor& x) { return cos(x); }, -3, 3),
        unary_cases(
            "tan", [](const Tensor& x) { return tan(x); }, -1.2, 1.2),
        unary_cases(
            "asin", [](const Tensor& x) { return asin(x); }, -0.9, 0.9),
        unary_cases(
            "acos", [](const Tensor& x) { return acos(x); }, -0.9, 0.9),
        unary_cases(
            "atan", [](const Tensor& x) { return atan(x); }, -3, 3),
        unary_cases(
            "sinh", [](const Tensor& x) { return sinh(x); }, -2, 2),
        unary_cases(
            "cosh", [](const Tensor& x) { return cosh(x); }, -2, 2),
        unary_cases(
            "asinh", [](const Tensor& x) { return asinh(x); }, -3, 3),
        unary_cases(
            "acosh", [](const Tensor& x) { return acosh(x); }, 1.2, 3),
        unary_cases(
            "atanh", [](const Tensor& x) { return atanh(x); }, -0.9, 0.9),
        unary_cases(
            "erf", [](const Tensor& x) { return erf(x); }, -2, 2),
        unary_cases(
            "erfc", [](const Tensor& x) { return erfc(x); }, -2, 2),
        unary_cases(
            "log1p", [](const Tensor& x) { return log1p(x); }, -0.8, 3),
        unary_cases(
            "expm1", [](const Tensor& x) { return expm1(x); }, -2, 2),
        unary_cases(
            "log2", [](const Tensor& x) { return log2(x); }, 0.2, 3),
        unary_cases(
            "log10", [](const Tensor& x) { return log10(x); }, 0.2, 3),
        unary_cases(
            "exp2", [](const Tensor& x) { return exp2(x); }, -2, 2),
        unary_cases(
            "cbrt", [](const Tensor& x) { return cbrt(x); }, -3, 3, 0.2),
        // inside (0.1, 0.4) none of the four jumps: the gradient is 0
        unary_cases(
            "floor", [](const Tensor& x) { return floor(x); }, 0.1, 0.4),
        unary_cases(
            "ceil", [](const Tensor& x) { return ceil(x); }, 0.1, 0.4),
        unary_cases(
            "round", [](const Tensor& x) { return round(x); }, 0.1, 0.4),
        unary_cases(
            "trunc", [](const Tensor& x) { return trunc(x); }, 0.1, 0.4)})
    all.insert(all.end(), v.begin(), v.end());
  for (const OpCheckCase& c : all) register_op_check(c);
  return OpCheckRegistrar{};
}();
}  // namespace
}  // namespace tapegrad
