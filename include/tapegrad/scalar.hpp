#pragma once
// Scalar: a 16-byte handle {tape, index, generation} to a scalar node. Each
// operation below computes its value and its local partials in one place and
// records them; the backward sweep only multiplies and adds.
#include <cmath>
#include <cstdint>

#include "tapegrad/tape.hpp"

namespace tapegrad {

class Scalar {
 public:
  Scalar() = default;  // empty: any use throws
  Scalar(Tape& tape, std::uint32_t index) : tape_(&tape), index_(index), gen_(tape.generation()) {}
  // A handle made at generation gen (one taken from another handle).
  Scalar(Tape& tape, std::uint32_t index, std::uint32_t gen)
      : tape_(&tape), index_(index), gen_(gen) {}

  double value() const { return checked().scalar_value(index_); }
  // d(root)/d(this) accumulated by backward calls; 0 for constants.
  double grad() const;
  // Replaces a leaf's value (for optimiser updates of parameters).
  void set_value(double v);
  void backward() const { checked().backward(*this); }
  bool is_leaf() const;
  // Names the node for DOT graphs and traces; returns *this.
  Scalar& named(std::string name);

  Tape& tape() const { return checked(); }
  Tape* tape_if_set() const { return tape_; }
  std::uint32_t index() const { return index_; }
  std::uint32_t generation() const { return gen_; }
  ScalarOp op() const { return checked().scalar_op(index_); }

  // Internal: checks the handle and returns its tape.
  Tape& checked(const char* what = "Scalar") const {
    if (!tape_) [[unlikely]]
      throw_empty(what);
    tape_->check_scalar(index_, gen_, what);
    return *tape_;
  }

 private:
  [[noreturn]] static void throw_empty(const char* what);
  Tape* tape_ = nullptr;
  std::uint32_t index_ = 0;
  std::uint32_t gen_ = 0;
};

// Leaves on the current tape.
Scalar var(double v, Site where = Site::current());
Scalar constant(double v, Site where = Site::current());
// A constant with the same value as x: gradients stop here.
Scalar detach(const Scalar& x, Site where = Site::current());

namespace detail {
[[noreturn]] void throw_mixed_tapes(const char* op);
[[noreturn]] void throw_bad_operand(ScalarOp op, const Scalar& x);

// The value and the local partials of one scalar op.
struct Partials {
  double v, da, db;
};
// The value of a lin node from its operands' values x and y, its weights da
// and db, and whether b is a node (else db is the number added). Recording
// (real.hpp) and replay both use it.
inline double lin_value(double x, double y, double da, double db, bool b_node) {
  return b_node ? da * x + db * y : da * x + db;
}

// Checks an operand without building an error string on the fast path.
inline Tape& operand(ScalarOp op, const Scalar& x) {
  Tape* t = x.tape_if_set();
  if (!t || !t->is_live_scalar(x.index(), x.generation())) [[unlikely]]
    throw_bad_operand(op, x);
  return *t;
}

// f(a) -> {value, d/da, unused}
template <class F>
inline Scalar unary(ScalarOp op, const Scalar& x, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(t.scalar_value(x.index()));
  return {t, t.push_scalar(op, x.index(), 0, p.da, 0.0, p.v, where)};
}
// f(a, b) -> {value, d/da, d/db}
template <class F>
inline Scalar binary(ScalarOp op, const Scalar& x, const Scalar& y, Site where, F&& f) {
  Tape& t = operand(op, x);
  if (&t != &operand(op, y)) [[unlikely]]
    throw_mixed_tapes(scalar_op_name(op));
  const Partials p = f(t.scalar_value(x.index()), t.scalar_value(y.index()));
  return {t, t.push_scalar(op, x.index(), y.index(), p.da, p.db, p.v, where)};
}
// A plain number beside a Scalar records no node of its own: it rides in the
// partial slot of an input edge that points at the sink (node 0). For x op c
// the node is {a = x, da = d/dx, b = sink, db = c}; for c op x it is
// {a = sink, da = c, b = x, db = d/dx}. The sweep sends c * grad into the sink,
// which is never read, so it stays the same two multiply-adds; inspection and
// replay read the number back from the slot (Tape::scalar_operand).
template <class F>
inline Scalar with_number(ScalarOp op, const Scalar& x, double c, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(t.scalar_value(x.index()), c);
  return {t, t.push_scalar(op, x.index(), 0, p.da, c, p.v, where)};
}
template <class F>
inline Scalar number_with(ScalarOp op, double c, const Scalar& x, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(c, t.scalar_value(x.index()));
  return {t, t.push_scalar(op, 0, x.index(), c, p.db, p.v, where)};
}
using S = At<Scalar>;
}  // namespace detail

namespace detail {
// The value and local partials of each binary op, shared by the Scalar-Scalar
// and the number-Scalar forms (and by replay).
// d(a+b)/da = 1, d(a+b)/db = 1: add distributes.
constexpr auto kAdd = [](double a, double b) { return Partials{a + b, 1.0, 1.0}; };
// d(a-b)/da = 1, d(a-b)/db = -1.
constexpr auto kSub = [](double a, double b) { return Partials{a - b, 1.0, -1.0}; };
// d(ab)/da = b, d(ab)/db = a: mul switches.
constexpr auto kMul = [](double a, double b) { return Partials{a * b, b, a}; };
// d(a/b)/da = 1/b, d(a/b)/db = -a/b^2.
constexpr auto kDiv = [](double a, double b) { return Partials{a / b, 1.0 / b, -a / (b * b)}; };
// d(a^b)/da = b a^(b-1); d(a^b)/db = a^b ln a (taken as 0 where a <= 0, where
// the real power is defined only for integer b and the log is not).
inline Partials pow_rule(double a, double b) {
  const double v = std::pow(a, b);
  return Partials{v, b == 0.0 ? 0.0 : b * std::pow(a, b - 1.0), a > 0.0 ? v * std::log(a) : 0.0};
}
// max routes the whole gradient to the larger input; on a tie, to the first.
constexpr auto kMax = [](double a, double b) {
  const bool first = a >= b;
  return Partials{first ? a : b, first ? 1.0 : 0.0, first ? 0.0 : 1.0};
};
// min routes the whole gradient to the smaller input; on a tie, to the first.
constexpr auto kMin = [](double a, double b) {
  const bool first = a <= b;
  return Partials{first ? a : b, first ? 1.0 : 0.0, first ? 0.0 : 1.0};
};
// The value and local partial of each unary op {v, d/da, unused}.
// d(-a)/da = -1.
constexpr auto kNeg = [](double a) { return Partials{-a, -1.0, 0}; };
// d(e^a)/da = e^a.
inline Partials exp_rule(double a) {
  const double v = std::exp(a);
  return {v, v, 0};
}
// d(ln a)/da = 1/a.
inline Partials log_rule(double a) { return {std::log(a), 1.0 / a, 0}; }
// d(sqrt a)/da = 1/(2 sqrt a).
inline Partials sqrt_rule(double a) {
  const double v = std::sqrt(a);
  return {v, 0.5 / v, 0};
}
// d|a|/da = sign(a), 0 at a = 0.
constexpr auto kAbs = [](double a) {
  return Partials{a < 0 ? -a : a, a > 0 ? 1.0 : (a < 0 ? -1.0 : 0.0), 0};
};
// d(tanh a)/da = 1 - tanh(a)^2.
inline Partials tanh_rule(double a) {
  const double v = std::tanh(a);
  return {v, 1.0 - v * v, 0};
}
// d(sigma a)/da = sigma(a) (1 - sigma(a)).
inline Partials sigmoid_rule(double a) {
  const double v = a >= 0 ? 1.0 / (1.0 + std::exp(-a)) : std::exp(a) / (1.0 + std::exp(a));
  return {v, v * (1.0 - v), 0};
}
// relu(a) = max(a, 0); the partial is 1 for a >= 0 (including exactly 0, the
// convention of the reference notes) and 0 below.
constexpr auto kRelu = [](double a) { return Partials{a >= 0 ? a : 0.0, a >= 0 ? 1.0 : 0.0, 0}; };
}  // namespace detail

inline Scalar operator+(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::add, x.v, y, x.where, detail::kAdd);
}
inline Scalar operator-(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::sub, x.v, y, x.where, detail::kSub);
}
inline Scalar operator*(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::mul, x.v, y, x.where, detail::kMul);
}
inline Scalar operator/(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::div, x.v, y, x.where, detail::kDiv);
}
// A plain number beside a Scalar: one node, the number kept on it.
inline Scalar operator+(detail::S x, double c) {
  return detail::with_number(ScalarOp::add, x.v, c, x.where, detail::kAdd);
}
inline Scalar operator+(double c, detail::S x) {
  return detail::number_with(ScalarOp::add, c, x.v, x.where, detail::kAdd);
}
inline Scalar operator-(detail::S x, double c) {
  return detail::with_number(ScalarOp::sub, x.v, c, x.where, detail::kSub);
}
inline Scalar operator-(double c, detail::S x) {
  return detail::number_with(ScalarOp::sub, c, x.v, x.where, detail::kSub);
}
inline Scalar operator*(detail::S x, double c) {
  return detail::with_number(ScalarOp::mul, x.v, c, x.where, detail::kMul);
}
inline Scalar operator*(double c, detail::S x) {
  return detail::number_with(ScalarOp::mul, c, x.v, x.where, detail::kMul);
}
inline Scalar operator/(detail::S x, double c) {
  return detail::with_number(ScalarOp::div, x.v, c, x.where, detail::kDiv);
}
inline Scalar operator/(double c, detail::S x) {
  return detail::number_with(ScalarOp::div, c, x.v, x.where, detail::kDiv);
}

inline Scalar& operator+=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} + y.v; }
inline Scalar& operator-=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} - y.v; }
inline Scalar& operator*=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} * y.v; }
inline Scalar& operator/=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} / y.v; }

inline Scalar operator-(detail::S x) {
  return detail::unary(ScalarOp::neg, x.v, x.where, detail::kNeg);
}
inline Scalar exp(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::exp, x, where, detail::exp_rule);
}
inline Scalar log(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::log, x, where, detail::log_rule);
}
inline Scalar sqrt(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::sqrt, x, where, detail::sqrt_rule);
}
inline Scalar abs(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::abs, x, where, detail::kAbs);
}
inline Scalar tanh(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::tanh, x, where, detail::tanh_rule);
}
inline Scalar sigmoid(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::sigmoid, x, where, detail::sigmoid_rule);
}
inline Scalar relu(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::relu, x, where, detail::kRelu);
}
inline Scalar pow(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::pow, x, y, where, detail::pow_rule);
}
inline Scalar pow(const Scalar& x, double c, Site where = Site::current()) {
  return detail::with_number(ScalarOp::pow, x, c, where, detail::pow_rule);
}
inline Scalar pow(double c, const Scalar& x, Site where = Site::current()) {
  return detail::number_with(ScalarOp::pow, c, x, where, detail::pow_rule);
}
inline Scalar max(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::max, x, y, where, detail::kMax);
}
inline Scalar min(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::min, x, y, where, detail::kMin);
}
inline Scalar max(const Scalar& x, double c, Site where = Site::current()) {
  return detail::with_number(ScalarOp::max, x, c, where, detail::kMax);
}
inline Scalar max(double c, const Scalar& x, Site where = Site::current()) {
  return detail::number_with(ScalarOp::max, c, x, where, detail::kMax);
}
inline Scalar min(const Scalar& x, double c, Site where = Site::current()) {
  return detail::with_number(ScalarOp::min, x, c, where, detail::kMin);
}
inline Scalar min(double c, const Scalar& x, Site where = Site::current()) {
  return detail::number_with(ScalarOp::min, c, x, where, detail::kMin);
}

// Comparisons of values, recorded: the tape keeps each outcome and the line
// that asked, so that replay can tell when a branch taken on it would go the
// other way (see replay.hpp). They return a plain bool. (A comparison made on
// x.value() directly is invisible to the tape: replay cannot check it.)
namespace detail {
inline bool compare(Compare how, const Scalar& x, const Scalar& y, Site where) {
  Tape& t = operand(ScalarOp::compare, x);
  if (&t != &operand(ScalarOp::compare, y)) [[unlikely]]
    throw_mixed_tapes("compare");
  return t.record_compare(how, x.index(), y.index(), 0.0, where);
}
inline bool compare(Compare how, const Scalar& x, double c, Site where) {
  return operand(ScalarOp::compare, x).record_compare(how, x.index(), 0, c, where);
}
inline bool compare(Compare how, double c, const Scalar& y, Site where) {
  return operand(ScalarOp::compare, y).record_compare(how, 0, y.index(), c, where);
}
}  // namespace detail
#define TAPEGRAD_COMPARE(OP, HOW)                          \
  inline bool operator OP(detail::S x, const Scalar& y) {  \
    return detail::compare(Compare::HOW, x.v, y, x.where); \
  }                                                        \
  inline bool operator OP(detail::S x, double c) {         \
    return detail::compare(Compare::HOW, x.v, c, x.where); \
  }                                                        \
  inline bool operator OP(double c, detail::S y) {         \
    return detail::compare(Compare::HOW, c, y.v, y.where); \
  }
TAPEGRAD_COMPARE(<, lt)
TAPEGRAD_COMPARE(<=, le)
TAPEGRAD_COMPARE(>, gt)
TAPEGRAD_COMPARE(>=, ge)
TAPEGRAD_COMPARE(==, eq)
TAPEGRAD_COMPARE(!=, ne)
#undef TAPEGRAD_COMPARE

}  // namespace tapegrad
