#pragma once
// Scalar: a 16-byte handle {tape, index, generation} to a scalar node. Each
// operation below computes its value and its local partials in one place and
// records them; the backward sweep only multiplies and adds.
#include <cmath>
#include <cstdint>

#include "tapegrad/rule_dispatch.hpp"
#include "tapegrad/tape.hpp"

namespace tapegrad {

class Scalar {
 public:
  Scalar() = default;  // empty: any use throws
  // A plain number becomes a constant on the current tape, so that code
  // written for double (`T sum = 0;`, `return 1.0;`) compiles with Scalar.
  Scalar(double v, Site where = Site::current());
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

// The value of a lin node from its operands' values x and y, its weights da
// and db, and whether b is a node (else db is the number added). Recording
// (real.hpp) and replay both use it.
inline double lin_value(double x, double y, double da, double db, bool b_node) {
  return b_node ? da * x + db * y : da * x + db;
}

// Checks an operand without building an error string on the fast path.
[[gnu::always_inline]] inline Tape& operand(ScalarOp op, const Scalar& x) {
  Tape* t = x.tape_if_set();
  if (!t || !t->is_live_scalar(x.index(), x.generation())) [[unlikely]]
    throw_bad_operand(op, x);
  return *t;
}

// f(a) -> {value, d/da, unused}
template <class F>
[[gnu::always_inline]] inline Scalar unary(ScalarOp op, const Scalar& x, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(t.scalar_value(x.index()));
  return {t, t.push_scalar(op, x.index(), 0, p.da, 0.0, p.v, where)};
}
// f(a, b) -> {value, d/da, d/db}
template <class F>
[[gnu::always_inline]] inline Scalar binary(ScalarOp op, const Scalar& x, const Scalar& y, Site where, F&& f) {
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
[[gnu::always_inline]] inline Scalar with_number(ScalarOp op, const Scalar& x, double c, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(t.scalar_value(x.index()), c);
  return {t, t.push_scalar(op, x.index(), 0, p.da, c, p.v, where)};
}
template <class F>
[[gnu::always_inline]] inline Scalar number_with(ScalarOp op, double c, const Scalar& x, Site where, F&& f) {
  Tape& t = operand(op, x);
  const Partials p = f(c, t.scalar_value(x.index()));
  return {t, t.push_scalar(op, 0, x.index(), c, p.db, p.v, where)};
}
using S = At<Scalar>;
}  // namespace detail

// One function per math op of the op table (op_table.hpp), each recording
// one node whose value and partials come from the op's Rule
// (math_rules.hpp). A plain number beside a Scalar rides on the node
// (see with_number). The same names as <cmath>, so generic code written
// for double finds them by argument-dependent lookup (`using std::sin;
// sin(x)`); fmin and fmax are min and max.
namespace detail {
// An op's rule as a function object: a direct call the compiler always
// inlines (a function pointer would leave that to constant propagation).
template <ScalarOp O>
struct Rule2 {
  [[gnu::always_inline]] Partials operator()(double a, double b) const { return first2<O>(a, b); }
};
template <ScalarOp O>
[[gnu::always_inline]] inline Scalar unary_op(const Scalar& x, Site where) {
  return unary(O, x, where, [](double a) __attribute__((always_inline)) { return first1<O>(a); });
}
template <ScalarOp O>
[[gnu::always_inline]] inline Scalar binary_op(const Scalar& x, const Scalar& y, Site where) {
  return binary(O, x, y, where, Rule2<O>{});
}
template <ScalarOp O>
[[gnu::always_inline]] inline Scalar binary_op(const Scalar& x, double c, Site where) {
  return with_number(O, x, c, where, Rule2<O>{});
}
template <ScalarOp O>
[[gnu::always_inline]] inline Scalar binary_op(double c, const Scalar& x, Site where) {
  return number_with(O, c, x, where, Rule2<O>{});
}
}  // namespace detail

#define TAPEGRAD_X(name, kind) TAPEGRAD_SCALAR_##kind(name)
#define TAPEGRAD_SCALAR_structural(name)
#define TAPEGRAD_SCALAR_unary_op(name)
#define TAPEGRAD_SCALAR_binary_op(name)
#define TAPEGRAD_SCALAR_unary_fn(name)                                  \
  [[gnu::always_inline]] inline Scalar name(const Scalar& x, Site where = Site::current()) {   \
    return detail::unary_op<ScalarOp::name>(x, where);                  \
  }
#define TAPEGRAD_SCALAR_binary_fn(name)                                           \
  [[gnu::always_inline]] inline Scalar name(const Scalar& x, const Scalar& y, Site where = Site::current()) { \
    return detail::binary_op<ScalarOp::name>(x, y, where);                        \
  }                                                                               \
  [[gnu::always_inline]] inline Scalar name(const Scalar& x, double c, Site where = Site::current()) { \
    return detail::binary_op<ScalarOp::name>(x, c, where);                        \
  }                                                                               \
  [[gnu::always_inline]] inline Scalar name(double c, const Scalar& x, Site where = Site::current()) { \
    return detail::binary_op<ScalarOp::name>(c, x, where);                        \
  }
TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_SCALAR_structural
#undef TAPEGRAD_SCALAR_unary_op
#undef TAPEGRAD_SCALAR_binary_op
#undef TAPEGRAD_SCALAR_unary_fn
#undef TAPEGRAD_SCALAR_binary_fn

#define TAPEGRAD_SCALAR_ALIAS(alias, name)                                                 \
  inline Scalar alias(const Scalar& x, const Scalar& y, Site where = Site::current()) {   \
    return name(x, y, where);                                                             \
  }                                                                                       \
  inline Scalar alias(const Scalar& x, double c, Site where = Site::current()) {          \
    return name(x, c, where);                                                             \
  }                                                                                       \
  inline Scalar alias(double c, const Scalar& x, Site where = Site::current()) {          \
    return name(c, x, where);                                                             \
  }
TAPEGRAD_SCALAR_ALIAS(fmax, max)
TAPEGRAD_SCALAR_ALIAS(fmin, min)
#undef TAPEGRAD_SCALAR_ALIAS

// The operators: add distributes, sub distributes (negated to b), mul
// switches, div scales; neg is -1 times.
#define TAPEGRAD_SCALAR_OPERATOR(OP, name)                                        \
  [[gnu::always_inline]] inline Scalar operator OP(detail::S x, const Scalar& y) {                       \
    return detail::binary_op<ScalarOp::name>(x.v, y, x.where);                    \
  }                                                                               \
  [[gnu::always_inline]] inline Scalar operator OP(detail::S x, double c) {                              \
    return detail::binary_op<ScalarOp::name>(x.v, c, x.where);                    \
  }                                                                               \
  [[gnu::always_inline]] inline Scalar operator OP(double c, detail::S x) {                              \
    return detail::binary_op<ScalarOp::name>(c, x.v, x.where);                    \
  }                                                                               \
  [[gnu::always_inline]] inline Scalar& operator OP##=(Scalar& x, detail::S y) { return x = detail::S{x, y.where} OP y.v; }
TAPEGRAD_SCALAR_OPERATOR(+, add)
TAPEGRAD_SCALAR_OPERATOR(-, sub)
TAPEGRAD_SCALAR_OPERATOR(*, mul)
TAPEGRAD_SCALAR_OPERATOR(/, div)
#undef TAPEGRAD_SCALAR_OPERATOR
[[gnu::always_inline]] inline Scalar operator-(detail::S x) {
  return detail::unary_op<ScalarOp::neg>(x.v, x.where);
}
inline Scalar operator+(detail::S x) { return x.v; }

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
