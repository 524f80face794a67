// Unary elementwise operations, and a Scalar scaling a tensor. Each op is one
// rule struct: f (the forward) and its local partial df/dx side by side.
#include <fmt/format.h>

#include <cmath>
#include <string_view>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {
namespace {

using detail::grads_for_write;
using detail::grads_of;
using detail::values_of;
using detail::wants_grad;

// ---- unary rules: f(x), and df/dx given x and y = f(x) ----

struct NegRule {
  static constexpr const char* name = "neg";
  template <class T>
  static T f(T x, double) {
    return -x;
  }
  template <class T>
  static T df(T, T, double) {
    return -1;
  }
};
struct ExpRule {  // d e^x = e^x
  static constexpr const char* name = "exp";
  template <class T>
  static T f(T x, double) {
    return std::exp(x);
  }
  template <class T>
  static T df(T, T y, double) {
    return y;
  }
  template <class T>
  static T d2f(T, T y, double) {
    return y;
  }
};
struct LogRule {  // d ln x = 1/x
  static constexpr const char* name = "log";
  template <class T>
  static T f(T x, double) {
    return std::log(x);
  }
  template <class T>
  static T df(T x, T, double) {
    return T(1) / x;
  }
  template <class T>
  static T d2f(T x, T, double) {
    return T(-1) / (x * x);
  }
};
struct SqrtRule {  // d sqrt x = 1/(2 sqrt x)
  static constexpr const char* name = "sqrt";
  template <class T>
  static T f(T x, double) {
    return std::sqrt(x);
  }
  template <class T>
  static T df(T, T y, double) {
    return T(0.5) / y;
  }
  template <class T>
  static T d2f(T, T y, double) {  // -1/(4 x^(3/2))
    return T(-0.25) / (y * y * y);
  }
};
struct AbsRule {  // d|x| = sign x, 0 at 0
  static constexpr const char* name = "abs";
  template <class T>
  static T f(T x, double) {
    return std::fabs(x);
  }
  template <class T>
  static T df(T x, T, double) {
    return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0));
  }
};
struct PowRule {  // d x^p = p x^(p-1)
  static constexpr const char* name = "pow";
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
struct SigmoidRule {  // d s(x) = s(x) (1 - s(x))
  static constexpr const char* name = "sigmoid";
  template <class T>
  static T f(T x, double) {
    return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  }
  template <class T>
  static T df(T, T y, double) {
    return y * (T(1) - y);
  }
  template <class T>
  static T d2f(T, T y, double) {
    return y * (T(1) - y) * (T(1) - T(2) * y);
  }
};
struct TanhRule {  // d tanh x = 1 - tanh^2 x
  static constexpr const char* name = "tanh";
  template <class T>
  static T f(T x, double) {
    return std::tanh(x);
  }
  template <class T>
  static T df(T, T y, double) {
    return T(1) - y * y;
  }
  template <class T>
  static T d2f(T, T y, double) {
    return T(-2) * y * (T(1) - y * y);
  }
};
struct ReluRule {  // routes: 1 for x >= 0 (the notes' convention at 0), else 0
  static constexpr const char* name = "relu";
  template <class T>
  static T f(T x, double) {
    return x >= 0 ? x : T(0);
  }
  template <class T>
  static T df(T x, T, double) {
    return x >= 0 ? T(1) : T(0);
  }
};
struct LeakyReluRule {  // 1 for x >= 0, slope below
  static constexpr const char* name = "leaky_relu";
  template <class T>
  static T f(T x, double s) {
    return x >= 0 ? x : static_cast<T>(s) * x;
  }
  template <class T>
  static T df(T x, T, double s) {
    return x >= 0 ? T(1) : static_cast<T>(s);
  }
};

template <class Rule>
void unary_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tnode(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.alpha;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tnode(t).grad);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    T beta;  // 0: the input's gradient is fresh, written rather than zeroed and added to
    T* gx = grads_for_write<T>(tape, ix, &beta);
    const std::int64_t count = tape.tnode(t).shape.numel();
    if (beta == T(0)) {
      for (std::int64_t i = 0; i < count; ++i) gx[i] = g[i] * Rule::df(x[i], y[i], alpha);
    } else {
      for (std::int64_t i = 0; i < count; ++i) gx[i] += g[i] * Rule::df(x[i], y[i], alpha);
    }
  });
}

template <class Rule>
void unary_forward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tnode(t);
  const double alpha = n.attrs.alpha;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, tape.tnode(t).in[0]);
    T* out = values_of<T>(tape, t);
    for (std::int64_t i = 0, count = tape.tnode(t).shape.numel(); i < count; ++i)
      out[i] = Rule::f(in[i], alpha);
  });
}

// Forward mode: t_y = f'(x) t_x.
template <class Rule>
void unary_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tnode(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.alpha;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    const T* tx = tg.of<T>(ix);
    T* ty = tg.out<T>(t);
    for (std::int64_t i = 0, count = tape.tnode(t).shape.numel(); i < count; ++i)
      ty[i] = Rule::df(x[i], y[i], alpha) * tx[i];
  });
}

// The curvature term: h_x += g f''(x) t_x.
template <class Rule>
void unary_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tnode(t);
  const std::uint32_t ix = n.in[0];
  const double alpha = n.attrs.alpha;
  if (!wants_grad(tape, t, 0)) return;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const T* x = values_of<T>(tape, ix);
    const T* y = values_of<T>(tape, t);
    const T* tx = tg.of<T>(ix);
    T* hx = grads_of<T>(tape, ix);
    for (std::int64_t i = 0, count = tape.tnode(t).shape.numel(); i < count; ++i)
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
  static const TensorOpDef def{Rule::name,
                               &unary_backward<Rule>,
                               std::string_view(Rule::name) == "relu" ? "routes" : nullptr,
                               &unary_forward<Rule>,
                               &unary_jvp<Rule>,
                               curvature_of<Rule>()};
  return def;
}

template <class Rule>
Tensor unary(const Tensor& x, Site where, double alpha = 0.0) {
  const TensorOpDef& def = unary_def<Rule>();
  Tape& tape = x.checked(Rule::name);
  const std::uint32_t t = tape.push_tensor(&def, x.shape(), x.dtype(), {x.index()}, where);
  tape.tnode(t).attrs.alpha = alpha;
  def.forward(tape, t);
  return {tape, t};
}

// ---- a Scalar scales a tensor: d(s x)/dx = s, d(s x)/ds = sum(g x) ----

void scale_backward(Tape& tape, std::uint32_t t) {
  const TensorNode& n = tape.tnode(t);
  const std::uint32_t ix = n.in[0], s = n.scalar_in;
  double* adj = tape.scalar_adjoints();
  const double sv = tape.scalar_value(s);
  const bool need_x = wants_grad(tape, t, 0);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = static_cast<const T*>(tape.tnode(t).grad);
    const T* x = values_of<T>(tape, ix);
    const std::int64_t count = tape.tnode(t).shape.numel();
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
  const TensorNode& n = tape.tnode(t);
  const double sv = tape.scalar_value(n.scalar_in);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* in = values_of<T>(tape, tape.tnode(t).in[0]);
    T* out = values_of<T>(tape, t);
    for (std::int64_t i = 0, count = tape.tnode(t).shape.numel(); i < count; ++i)
      out[i] = static_cast<T>(sv) * in[i];
  });
}
// t_y = t_s x + s t_x.
void scale_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tnode(t);
  const double sv = tape.scalar_value(n.scalar_in), ts = tg.scalar(n.scalar_in);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const std::uint32_t ix = tape.tnode(t).in[0];
    const T* x = values_of<T>(tape, ix);
    const T* tx = tg.of<T>(ix);
    T* ty = tg.out<T>(t);
    for (std::int64_t i = 0, count = tape.tnode(t).shape.numel(); i < count; ++i)
      ty[i] = static_cast<T>(ts) * x[i] + static_cast<T>(sv) * tx[i];
  });
}
// Bilinear in s and x: h_s += sum(g t_x), h_x += g t_s.
void scale_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  const TensorNode& n = tape.tnode(t);
  const std::uint32_t ix = n.in[0], s = n.scalar_in;
  const double ts = tg.scalar(s);
  const bool need_x = wants_grad(tape, t, 0) && ts != 0.0, has_x = tg.has(ix);
  double* h = tape.scalar_adjoints();
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* g = tg.first_grad<T>(t);
    const std::int64_t count = tape.tnode(t).shape.numel();
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
const TensorOpDef kScale{"scale",        &scale_backward, "switches",
                         &scale_forward, &scale_jvp,      &scale_curvature};

}  // namespace

Tensor scale(const Scalar& s, const Tensor& x, Site where) {
  Tape& tape = x.checked("scale");
  if (&s.checked("scale") != &tape)
    throw Error("scale: the Scalar and the Tensor live on different tapes");
  const std::uint32_t t =
      tape.push_tensor(&kScale, x.shape(), x.dtype(), {x.index()}, where, s.index());
  scale_forward(tape, t);
  return {tape, t};
}

Tensor neg(const Tensor& x, Site where) { return unary<NegRule>(x, where); }
Tensor exp(const Tensor& x, Site where) { return unary<ExpRule>(x, where); }
Tensor log(const Tensor& x, Site where) { return unary<LogRule>(x, where); }
Tensor sqrt(const Tensor& x, Site where) { return unary<SqrtRule>(x, where); }
Tensor abs(const Tensor& x, Site where) { return unary<AbsRule>(x, where); }
Tensor pow(const Tensor& x, double p, Site where) { return unary<PowRule>(x, where, p); }
Tensor sigmoid(const Tensor& x, Site where) { return unary<SigmoidRule>(x, where); }
Tensor tanh(const Tensor& x, Site where) { return unary<TanhRule>(x, where); }
Tensor relu(const Tensor& x, Site where) { return unary<ReluRule>(x, where); }
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
            "scale", [](const Tensor& x) { return sum(x).item() * x; }, -1, 1)})
    all.insert(all.end(), v.begin(), v.end());
  for (const OpCheckCase& c : all) register_op_check(c);
  return OpCheckRegistrar{};
}();
}  // namespace
}  // namespace tapegrad
