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
// A plain double used beside a Scalar becomes a constant on the Scalar's tape,
// so the graph shows it.
inline Scalar lift(const Scalar& like, double c, Site where) {
  Tape& t = operand(ScalarOp::constant, like);
  return {t, t.push_scalar(ScalarOp::constant, 0, 0, 0.0, 0.0, c, where)};
}
using S = At<Scalar>;
}  // namespace detail

// d(x+y)/dx = 1, d(x+y)/dy = 1: add distributes.
inline Scalar operator+(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::add, x.v, y, x.where, [](double a, double b) {
    return detail::Partials{a + b, 1.0, 1.0};
  });
}
// d(x-y)/dx = 1, d(x-y)/dy = -1.
inline Scalar operator-(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::sub, x.v, y, x.where, [](double a, double b) {
    return detail::Partials{a - b, 1.0, -1.0};
  });
}
// d(xy)/dx = y, d(xy)/dy = x: mul switches.
inline Scalar operator*(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::mul, x.v, y, x.where, [](double a, double b) {
    return detail::Partials{a * b, b, a};
  });
}
// d(x/y)/dx = 1/y, d(x/y)/dy = -x/y^2.
inline Scalar operator/(detail::S x, const Scalar& y) {
  return detail::binary(ScalarOp::div, x.v, y, x.where, [](double a, double b) {
    return detail::Partials{a / b, 1.0 / b, -a / (b * b)};
  });
}
// d(-x)/dx = -1.
inline Scalar operator-(detail::S x) {
  return detail::unary(ScalarOp::neg, x.v, x.where, [](double a) {
    return detail::Partials{-a, -1.0, 0};
  });
}

// A plain number beside a Scalar becomes a constant node on its tape.
inline Scalar operator+(detail::S x, double c) {
  return detail::S{x.v, x.where} + detail::lift(x.v, c, x.where);
}
inline Scalar operator+(double c, detail::S x) {
  return detail::S{detail::lift(x.v, c, x.where), x.where} + x.v;
}
inline Scalar operator-(detail::S x, double c) {
  return detail::S{x.v, x.where} - detail::lift(x.v, c, x.where);
}
inline Scalar operator-(double c, detail::S x) {
  return detail::S{detail::lift(x.v, c, x.where), x.where} - x.v;
}
inline Scalar operator*(detail::S x, double c) {
  return detail::S{x.v, x.where} * detail::lift(x.v, c, x.where);
}
inline Scalar operator*(double c, detail::S x) {
  return detail::S{detail::lift(x.v, c, x.where), x.where} * x.v;
}
inline Scalar operator/(detail::S x, double c) {
  return detail::S{x.v, x.where} / detail::lift(x.v, c, x.where);
}
inline Scalar operator/(double c, detail::S x) {
  return detail::S{detail::lift(x.v, c, x.where), x.where} / x.v;
}

inline Scalar& operator+=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} + y.v; }
inline Scalar& operator-=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} - y.v; }
inline Scalar& operator*=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} * y.v; }
inline Scalar& operator/=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} / y.v; }

// d(x^y)/dx = y x^(y-1); d(x^y)/dy = x^y ln x (taken as 0 where x <= 0, where
// the real power is defined only for integer y and the log is not).
inline Scalar pow(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::pow, x, y, where, [](double a, double b) {
    const double v = std::pow(a, b);
    return detail::Partials{v, b == 0.0 ? 0.0 : b * std::pow(a, b - 1.0),
                            a > 0.0 ? v * std::log(a) : 0.0};
  });
}
inline Scalar pow(const Scalar& x, double c, Site where = Site::current()) {
  return pow(x, detail::lift(x, c, where), where);
}
// d(e^x)/dx = e^x.
inline Scalar exp(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::exp, x, where, [](double a) {
    const double v = std::exp(a);
    return detail::Partials{v, v, 0};
  });
}
// d(ln x)/dx = 1/x.
inline Scalar log(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::log, x, where, [](double a) {
    return detail::Partials{std::log(a), 1.0 / a, 0};
  });
}
// d(sqrt x)/dx = 1/(2 sqrt x).
inline Scalar sqrt(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::sqrt, x, where, [](double a) {
    const double v = std::sqrt(a);
    return detail::Partials{v, 0.5 / v, 0};
  });
}
// d|x|/dx = sign(x), 0 at x = 0.
inline Scalar abs(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::abs, x, where, [](double a) {
    return detail::Partials{std::fabs(a), a > 0 ? 1.0 : (a < 0 ? -1.0 : 0.0), 0};
  });
}
// d(tanh x)/dx = 1 - tanh(x)^2.
inline Scalar tanh(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::tanh, x, where, [](double a) {
    const double v = std::tanh(a);
    return detail::Partials{v, 1.0 - v * v, 0};
  });
}
// d(sigma x)/dx = sigma(x) (1 - sigma(x)).
inline Scalar sigmoid(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::sigmoid, x, where, [](double a) {
    const double v = a >= 0 ? 1.0 / (1.0 + std::exp(-a)) : std::exp(a) / (1.0 + std::exp(a));
    return detail::Partials{v, v * (1.0 - v), 0};
  });
}
// relu(x) = max(x, 0); the gradient is 1 for x >= 0 (including exactly 0, the
// convention of the reference notes) and 0 below.
inline Scalar relu(const Scalar& x, Site where = Site::current()) {
  return detail::unary(ScalarOp::relu, x, where, [](double a) {
    return detail::Partials{a >= 0 ? a : 0.0, a >= 0 ? 1.0 : 0.0, 0};
  });
}
// max routes the whole gradient to the larger input; on a tie, to the first.
inline Scalar max(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::max, x, y, where, [](double a, double b) {
    const bool first = a >= b;
    return detail::Partials{first ? a : b, first ? 1.0 : 0.0, first ? 0.0 : 1.0};
  });
}
// min routes the whole gradient to the smaller input; on a tie, to the first.
inline Scalar min(const Scalar& x, const Scalar& y, Site where = Site::current()) {
  return detail::binary(ScalarOp::min, x, y, where, [](double a, double b) {
    const bool first = a <= b;
    return detail::Partials{first ? a : b, first ? 1.0 : 0.0, first ? 0.0 : 1.0};
  });
}
inline Scalar max(const Scalar& x, double c, Site where = Site::current()) {
  return max(x, detail::lift(x, c, where), where);
}
inline Scalar max(double c, const Scalar& x, Site where = Site::current()) {
  return max(detail::lift(x, c, where), x, where);
}
inline Scalar min(const Scalar& x, double c, Site where = Site::current()) {
  return min(x, detail::lift(x, c, where), where);
}
inline Scalar min(double c, const Scalar& x, Site where = Site::current()) {
  return min(detail::lift(x, c, where), x, where);
}

}  // namespace tapegrad
