#pragma once
// The mathematics of every math op in the op table (op_table.hpp), once:
// Rule<ScalarOp::sin> holds sin's value, its partial, its second partial,
// its gate and the note the trace prints. Scalar and Real recording, replay,
// the compiled program, forward mode, the curvature sweep, the per-node check,
// the CLI and the element-wise tensor ops (float32 and float64) all read
// these. A math op without a Rule, or a Rule with neither d2 nor
// `linear = true`, does not compile (see rule_dispatch.hpp, which every
// user of the rules includes).
//
// A unary rule has
//   f(x)          the value
//   d(x, y)       dy/dx, given x and y = f(x)
//   d2(x, y)      d2y/dx2 (absent when `linear`: piecewise linear or
//                 constant, no curvature; at a kink the partial is the
//                 documented one-sided choice)
//   first(x)      optional: {value, partial} in one go (sin and cos use one
//                 sincos call); by default {f(x), d(x, f(x))}
// and a binary rule f(a, b), da(a, b), db(a, b), d2(a, b, v) -> {aa, ab, bb}
// and optionally first(a, b). Every template parameter T is float or double.
//
// Edge policies (docs/usage.md, "The math vocabulary"): partials are +-inf
// where the derivative is (asin, acos at +-1; sqrt, cbrt at 0; acosh at 1;
// atanh at +-1; log at 0); floor, ceil, round and trunc have partial 0;
// fmod's partials are 1 and -trunc(a/b); hypot and atan2 take partials 0 at
// the origin, where they have no derivative; abs and relu take the partial
// of the right side at 0 for relu (1) and 0 for abs; max and min send
// everything to the first input on a tie.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

#include "tapegrad/op_table.hpp"

namespace tapegrad::detail {

// The value and the local partials of one scalar op.
struct Partials {
  double v, da, db;
};
// The second partials {d2/da2, d2/dadb, d2/db2}.
template <class T>
struct Curv {
  T aa, ab, bb;
};
using Second = Curv<double>;

template <ScalarOp O>
struct Rule;  // one specialisation per math op, below

#define TAPEGRAD_NOTE(g, text)           \
  static constexpr Gate gate = Gate::g;  \
  static constexpr const char* note = text;

// ---- arithmetic ----

template <>
struct Rule<ScalarOp::add> {
  TAPEGRAD_NOTE(distributes, "distributes")
  static constexpr bool linear = true;
  template <class T> static T f(T a, T b) { return a + b; }
  template <class T> static T da(T, T) { return 1; }
  template <class T> static T db(T, T) { return 1; }
};
template <>
struct Rule<ScalarOp::sub> {
  TAPEGRAD_NOTE(distributes, "distributes")
  static constexpr const char* note_b = "distributes, negated";
  static constexpr bool linear = true;
  template <class T> static T f(T a, T b) { return a - b; }
  template <class T> static T da(T, T) { return 1; }
  template <class T> static T db(T, T) { return -1; }
};
template <>
struct Rule<ScalarOp::mul> {  // mul switches: each input gets the other one
  TAPEGRAD_NOTE(switches, "switches, × the other input")
  template <class T> static T f(T a, T b) { return a * b; }
  template <class T> static T da(T, T b) { return b; }
  template <class T> static T db(T a, T) { return a; }
  template <class T> static Curv<T> d2(T, T, T) { return {0, 1, 0}; }
};
template <>
struct Rule<ScalarOp::div> {
  TAPEGRAD_NOTE(scales, "local = 1/b")
  static constexpr const char* note_b = "local = -a/b²";
  template <class T> static T f(T a, T b) { return a / b; }
  template <class T> static T da(T, T b) { return T(1) / b; }
  template <class T> static T db(T a, T b) { return -a / (b * b); }
  template <class T> static Curv<T> d2(T a, T b, T) {
    const T r = T(1) / b;
    return {0, -r * r, T(2) * a * r * r * r};
  }
};
template <>
struct Rule<ScalarOp::neg> {
  TAPEGRAD_NOTE(scales, "local = -1")
  static constexpr bool linear = true;
  template <class T> static T f(T x) { return -x; }
  template <class T> static T d(T, T) { return -1; }
};
// a^b. d/da = b a^(b-1); d/db = a^b ln a, taken as 0 where a <= 0 (there the
// real power is defined only for integer b, and the log is not).
template <>
struct Rule<ScalarOp::pow> {
  TAPEGRAD_NOTE(scales, "local = b a^(b-1)")
  static constexpr const char* note_b = "local = a^b ln a";
  template <class T> static T f(T a, T b) { return std::pow(a, b); }
  template <class T> static T da(T a, T b) { return b == 0 ? T(0) : T(b * std::pow(a, b - 1)); }
  template <class T> static T db(T a, T b) { return a > 0 ? T(std::pow(a, b) * std::log(a)) : T(0); }
  static Partials first(double a, double b) {
    const double v = std::pow(a, b);
    return {v, b == 0.0 ? 0.0 : b * std::pow(a, b - 1.0), a > 0.0 ? v * std::log(a) : 0.0};
  }
  template <class T> static Curv<T> d2(T a, T b, T v) {
    const T aa = b == 0 || b == 1 ? T(0) : T(b * (b - 1) * std::pow(a, b - 2));
    if (a <= 0) return {aa, 0, 0};
    const T l = std::log(a);
    return {aa, T(std::pow(a, b - 1) * (1 + b * l)), v * l * l};
  }
};
// max and min route the whole gradient to one input; on a tie, to the first.
template <>
struct Rule<ScalarOp::max> {
  TAPEGRAD_NOTE(routes, "routes, this input won")
  static constexpr const char* note_blocked = "routes, this input lost";
  static constexpr bool linear = true;
  template <class T> static T f(T a, T b) { return a >= b ? a : b; }
  template <class T> static T da(T a, T b) { return a >= b ? T(1) : T(0); }
  template <class T> static T db(T a, T b) { return a >= b ? T(0) : T(1); }
};
template <>
struct Rule<ScalarOp::min> {
  TAPEGRAD_NOTE(routes, "routes, this input won")
  static constexpr const char* note_blocked = "routes, this input lost";
  static constexpr bool linear = true;
  template <class T> static T f(T a, T b) { return a <= b ? a : b; }
  template <class T> static T da(T a, T b) { return a <= b ? T(1) : T(0); }
  template <class T> static T db(T a, T b) { return a <= b ? T(0) : T(1); }
};

// ---- the activation functions ----

template <>
struct Rule<ScalarOp::abs> {  // sign x, 0 at 0
  TAPEGRAD_NOTE(scales, "local = sign x")
  static constexpr bool linear = true;
  template <class T> static T f(T x) { return x < 0 ? -x : x; }
  template <class T> static T d(T x, T) { return x > 0 ? T(1) : (x < 0 ? T(-1) : T(0)); }
};
template <>
struct Rule<ScalarOp::relu> {  // 1 for x >= 0 (the worked examples' convention at 0)
  TAPEGRAD_NOTE(routes, "routes, passes")
  static constexpr const char* note_blocked = "routes, blocks";
  static constexpr bool linear = true;
  template <class T> static T f(T x) { return x >= 0 ? x : T(0); }
  template <class T> static T d(T x, T) { return x >= 0 ? T(1) : T(0); }
};
template <>
struct Rule<ScalarOp::sigmoid> {  // s (1 - s); the value without overflow on either side
  TAPEGRAD_NOTE(scales, "local = s(1-s)")
  template <class T> static T f(T x) {
    return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  }
  template <class T> static T d(T, T y) { return y * (T(1) - y); }
  template <class T> static T d2(T, T y) { return y * (T(1) - y) * (T(1) - T(2) * y); }
};
template <>
struct Rule<ScalarOp::tanh> {
  TAPEGRAD_NOTE(scales, "local = 1 - tanh²")
  template <class T> static T f(T x) { return std::tanh(x); }
  template <class T> static T d(T, T y) { return T(1) - y * y; }
  template <class T> static T d2(T, T y) { return T(-2) * y * (T(1) - y * y); }
};

// ---- exponentials and logarithms ----

template <>
struct Rule<ScalarOp::exp> {
  TAPEGRAD_NOTE(scales, "local = e^x")
  template <class T> static T f(T x) { return std::exp(x); }
  template <class T> static T d(T, T y) { return y; }
  template <class T> static T d2(T, T y) { return y; }
};
template <>
struct Rule<ScalarOp::log> {
  TAPEGRAD_NOTE(scales, "local = 1/x")
  template <class T> static T f(T x) { return std::log(x); }
  template <class T> static T d(T x, T) { return T(1) / x; }
  template <class T> static T d2(T x, T) { return T(-1) / (x * x); }
};
template <>
struct Rule<ScalarOp::sqrt> {  // +inf at 0
  TAPEGRAD_NOTE(scales, "local = 1/(2 sqrt x)")
  template <class T> static T f(T x) { return std::sqrt(x); }
  template <class T> static T d(T, T y) { return T(0.5) / y; }
  template <class T> static T d2(T, T y) { return T(-0.25) / (y * y * y); }
};
template <>
struct Rule<ScalarOp::log1p> {  // log(1 + x), exact near 0
  TAPEGRAD_NOTE(scales, "local = 1/(1+x)")
  template <class T> static T f(T x) { return std::log1p(x); }
  template <class T> static T d(T x, T) { return T(1) / (T(1) + x); }
  template <class T> static T d2(T x, T) { return T(-1) / ((T(1) + x) * (T(1) + x)); }
};
template <>
struct Rule<ScalarOp::expm1> {  // e^x - 1, exact near 0
  TAPEGRAD_NOTE(scales, "local = e^x")
  template <class T> static T f(T x) { return std::expm1(x); }
  template <class T> static T d(T, T y) { return y + T(1); }
  template <class T> static T d2(T, T y) { return y + T(1); }
};
template <>
struct Rule<ScalarOp::log2> {
  TAPEGRAD_NOTE(scales, "local = 1/(x ln 2)")
  template <class T> static T f(T x) { return std::log2(x); }
  template <class T> static T d(T x, T) { return T(1) / (x * T(std::numbers::ln2)); }
  template <class T> static T d2(T x, T) { return T(-1) / (x * x * T(std::numbers::ln2)); }
};
template <>
struct Rule<ScalarOp::log10> {
  TAPEGRAD_NOTE(scales, "local = 1/(x ln 10)")
  template <class T> static T f(T x) { return std::log10(x); }
  template <class T> static T d(T x, T) { return T(1) / (x * T(std::numbers::ln10)); }
  template <class T> static T d2(T x, T) { return T(-1) / (x * x * T(std::numbers::ln10)); }
};
template <>
struct Rule<ScalarOp::exp2> {
  TAPEGRAD_NOTE(scales, "local = 2^x ln 2")
  template <class T> static T f(T x) { return std::exp2(x); }
  template <class T> static T d(T, T y) { return y * T(std::numbers::ln2); }
  template <class T> static T d2(T, T y) { return y * T(std::numbers::ln2 * std::numbers::ln2); }
};
template <>
struct Rule<ScalarOp::cbrt> {  // +inf at 0
  TAPEGRAD_NOTE(scales, "local = 1/(3 cbrt(x)²)")
  template <class T> static T f(T x) { return std::cbrt(x); }
  template <class T> static T d(T, T y) { return T(1) / (T(3) * y * y); }
  template <class T> static T d2(T, T y) { return T(-2) / (T(9) * y * y * y * y * y); }
};

// ---- trigonometric and hyperbolic ----

// sin x and cos x from one sincos call, and the last pair kept per thread:
// code that takes both of one angle (a rotation, a pendulum's sin and cos
// of theta1 - theta2) pays for one call. Keyed by the argument's bits, so
// -0 and +0 are told apart and a NaN never matches.
struct SinCos {
  std::uint64_t key = 0x7ff8000000000000u;  // a NaN, whose sine and cosine are NaN
  double s = std::numeric_limits<double>::quiet_NaN(), c = s;
};
inline thread_local SinCos t_sincos;
[[gnu::always_inline]] inline void sin_cos(double x, double* s, double* c) {
  SinCos& m = t_sincos;
  const auto bits = std::bit_cast<std::uint64_t>(x);
  if (bits != m.key) [[unlikely]] {
    (::sincos)(x, &m.s, &m.c);  // parenthesised: Graphviz's arith.h defines a sincos macro
    m.key = bits;
  }
  *s = m.s, *c = m.c;
}

template <>
struct Rule<ScalarOp::sin> {
  TAPEGRAD_NOTE(scales, "local = cos x")
  template <class T> static T f(T x) { return std::sin(x); }
  template <class T> static T d(T x, T) { return std::cos(x); }
  template <class T> static T d2(T, T y) { return -y; }
  static Partials first(double x) {
    double s, c;
    sin_cos(x, &s, &c);
    return {s, c, 0};
  }
};
template <>
struct Rule<ScalarOp::cos> {
  TAPEGRAD_NOTE(scales, "local = -sin x")
  template <class T> static T f(T x) { return std::cos(x); }
  template <class T> static T d(T x, T) { return -std::sin(x); }
  template <class T> static T d2(T, T y) { return -y; }
  static Partials first(double x) {
    double s, c;
    sin_cos(x, &s, &c);
    return {c, -s, 0};
  }
};
template <>
struct Rule<ScalarOp::tan> {
  TAPEGRAD_NOTE(scales, "local = 1 + tan²")
  template <class T> static T f(T x) { return std::tan(x); }
  template <class T> static T d(T, T y) { return T(1) + y * y; }
  template <class T> static T d2(T, T y) { return T(2) * y * (T(1) + y * y); }
};
// asin, acos: 1/sqrt(1 - x^2) written (1 - x)(1 + x), exact near +-1, where it is inf.
template <>
struct Rule<ScalarOp::asin> {
  TAPEGRAD_NOTE(scales, "local = 1/sqrt(1-x²)")
  template <class T> static T f(T x) { return std::asin(x); }
  template <class T> static T d(T x, T) { return T(1) / std::sqrt((T(1) - x) * (T(1) + x)); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return x * g * g * g; }
};
template <>
struct Rule<ScalarOp::acos> {
  TAPEGRAD_NOTE(scales, "local = -1/sqrt(1-x²)")
  template <class T> static T f(T x) { return std::acos(x); }
  template <class T> static T d(T x, T) { return T(-1) / std::sqrt((T(1) - x) * (T(1) + x)); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return x * g * g * g; }
};
template <>
struct Rule<ScalarOp::atan> {
  TAPEGRAD_NOTE(scales, "local = 1/(1+x²)")
  template <class T> static T f(T x) { return std::atan(x); }
  template <class T> static T d(T x, T) { return T(1) / (T(1) + x * x); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return T(-2) * x * g * g; }
};
template <>
struct Rule<ScalarOp::sinh> {
  TAPEGRAD_NOTE(scales, "local = cosh x")
  template <class T> static T f(T x) { return std::sinh(x); }
  template <class T> static T d(T x, T) { return std::cosh(x); }
  template <class T> static T d2(T, T y) { return y; }
};
template <>
struct Rule<ScalarOp::cosh> {
  TAPEGRAD_NOTE(scales, "local = sinh x")
  template <class T> static T f(T x) { return std::cosh(x); }
  template <class T> static T d(T x, T) { return std::sinh(x); }
  template <class T> static T d2(T, T y) { return y; }
};
template <>
struct Rule<ScalarOp::asinh> {  // 1/sqrt(x^2 + 1) as 1/hypot(x, 1): no overflow
  TAPEGRAD_NOTE(scales, "local = 1/sqrt(x²+1)")
  template <class T> static T f(T x) { return std::asinh(x); }
  template <class T> static T d(T x, T) { return T(1) / std::hypot(x, T(1)); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return -x * g * g * g; }
};
template <>
struct Rule<ScalarOp::acosh> {  // +inf at 1
  TAPEGRAD_NOTE(scales, "local = 1/sqrt(x²-1)")
  template <class T> static T f(T x) { return std::acosh(x); }
  template <class T> static T d(T x, T) { return T(1) / (std::sqrt(x - T(1)) * std::sqrt(x + T(1))); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return -x * g * g * g; }
};
template <>
struct Rule<ScalarOp::atanh> {  // +inf at +-1
  TAPEGRAD_NOTE(scales, "local = 1/(1-x²)")
  template <class T> static T f(T x) { return std::atanh(x); }
  template <class T> static T d(T x, T) { return T(1) / ((T(1) - x) * (T(1) + x)); }
  template <class T> static T d2(T x, T y) { const T g = d(x, y); return T(2) * x * g * g; }
};

// ---- error functions ----

inline constexpr double k2OverSqrtPi = 2.0 * std::numbers::inv_sqrtpi;
template <>
struct Rule<ScalarOp::erf> {
  TAPEGRAD_NOTE(scales, "local = 2/sqrt(π) e^(-x²)")
  template <class T> static T f(T x) { return std::erf(x); }
  template <class T> static T d(T x, T) { return T(k2OverSqrtPi) * std::exp(-x * x); }
  template <class T> static T d2(T x, T y) { return T(-2) * x * d(x, y); }
};
template <>
struct Rule<ScalarOp::erfc> {  // 1 - erf(x) without cancellation for large x
  TAPEGRAD_NOTE(scales, "local = -2/sqrt(π) e^(-x²)")
  template <class T> static T f(T x) { return std::erfc(x); }
  template <class T> static T d(T x, T) { return T(-k2OverSqrtPi) * std::exp(-x * x); }
  template <class T> static T d2(T x, T y) { return T(-2) * x * d(x, y); }
};

// ---- rounding: piecewise constant, partial 0 ----

#define TAPEGRAD_ROUNDING(op, fn)                                \
  template <>                                                    \
  struct Rule<ScalarOp::op> {                                    \
    TAPEGRAD_NOTE(scales, "local = 0 (piecewise constant)")      \
    static constexpr bool linear = true;                         \
    template <class T> static T f(T x) { return std::fn(x); }    \
    template <class T> static T d(T, T) { return 0; }            \
  };
TAPEGRAD_ROUNDING(floor, floor)
TAPEGRAD_ROUNDING(ceil, ceil)
TAPEGRAD_ROUNDING(round, round)
TAPEGRAD_ROUNDING(trunc, trunc)
#undef TAPEGRAD_ROUNDING

// ---- functions of two arguments ----

// atan2(a, b), the angle of the point (b, a): d/da = b/r², d/db = -a/r²
// with r = hypot(a, b) (no overflow; every quadrant); 0 at the origin.
template <>
struct Rule<ScalarOp::atan2> {
  TAPEGRAD_NOTE(scales, "local = b/(a²+b²)")
  static constexpr const char* note_b = "local = -a/(a²+b²)";
  template <class T> static T f(T a, T b) { return std::atan2(a, b); }
  template <class T> static T da(T a, T b) {
    const T r = std::hypot(a, b);
    return r == 0 ? T(0) : b / r / r;
  }
  template <class T> static T db(T a, T b) {
    const T r = std::hypot(a, b);
    return r == 0 ? T(0) : -a / r / r;
  }
  static Partials first(double a, double b) {
    const double r = std::hypot(a, b);
    if (r == 0) return {std::atan2(a, b), 0, 0};
    return {std::atan2(a, b), b / r / r, -a / r / r};
  }
  template <class T> static Curv<T> d2(T a, T b, T) {
    const T r = std::hypot(a, b);
    if (r == 0) return {0, 0, 0};
    const T p = a / r, q = b / r, r2 = r * r;
    return {T(-2) * p * q / r2, (p * p - q * q) / r2, T(2) * p * q / r2};
  }
};
// hypot(a, b) = sqrt(a² + b²) without overflow: d/da = a/h, d/db = b/h; 0 at the origin.
template <>
struct Rule<ScalarOp::hypot> {
  TAPEGRAD_NOTE(scales, "local = a/hypot(a,b)")
  static constexpr const char* note_b = "local = b/hypot(a,b)";
  template <class T> static T f(T a, T b) { return std::hypot(a, b); }
  template <class T> static T da(T a, T b) {
    const T h = std::hypot(a, b);
    return h == 0 ? T(0) : a / h;
  }
  template <class T> static T db(T a, T b) {
    const T h = std::hypot(a, b);
    return h == 0 ? T(0) : b / h;
  }
  static Partials first(double a, double b) {
    const double h = std::hypot(a, b);
    if (h == 0) return {0, 0, 0};
    return {h, a / h, b / h};
  }
  template <class T> static Curv<T> d2(T a, T b, T h) {
    if (h == 0) return {0, 0, 0};
    const T p = a / h, q = b / h;
    return {q * q / h, -p * q / h, p * p / h};
  }
};
// fmod(a, b) = a - trunc(a/b) b: partials 1 and -trunc(a/b), linear between the jumps.
template <>
struct Rule<ScalarOp::fmod> {
  TAPEGRAD_NOTE(scales, "local = 1")
  static constexpr const char* note_b = "local = -trunc(a/b)";
  static constexpr bool linear = true;
  template <class T> static T f(T a, T b) { return std::fmod(a, b); }
  template <class T> static T da(T, T) { return 1; }
  template <class T> static T db(T a, T b) { return -std::trunc(a / b); }
};
#undef TAPEGRAD_NOTE

}  // namespace tapegrad::detail
