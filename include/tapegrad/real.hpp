#pragma once
// Real: statement-level recording of the linear part of scalar code.
//
// A Scalar records one node per operation, so the stencil statement
//   flux = 0.5 * c * (q0 + q1 + c * (q0 - q1))
// costs five nodes. With Real in place of Scalar the linear operations
// (+, -, unary -, products with and divisions by plain numbers) record
// nothing: they build a small expression object. Assigning it to a Real
// records the whole statement at once, as weighted sums (ScalarOp::lin
// nodes) of its distinct operands: the flux above is one node,
// w0 q0 + w1 q1, with w0 = 0.5c(1 + c) and w1 = 0.5c(1 - c). Nonlinear
// operations (products of two values, exp, max, ...) record their usual
// node and give back a Real, so any expression can be written; only its
// linear glue is folded.
//
// Every node is still an op with a forward rule, fixed partials and no
// curvature: the tape stays inspectable (DOT, trace, check_nodes), it can be
// replayed and optimised, and forward mode, Hessians and HVPs run over it.
//
// The expression objects hold references to their operands (that is what
// lets the compiler turn a statement into straight-line code), so they are
// temporaries only: every operator and every conversion takes them as
// rvalues. `auto e = a + b;` compiles, but e cannot then be used (Real r = e
// and e + c do not compile), so a dangling expression cannot be read by
// mistake. Write `Real e = a + b;` to keep a value.
#include <array>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "tapegrad/scalar.hpp"

namespace tapegrad {

class Real;

// The base of the expression types. (They live in detail; this base, here,
// is what lets argument-dependent lookup find the operators below for
// them.)
struct LinearExprBase {};

// An unrecorded linear expression (a temporary).
template <class E>
concept LinearExpr = std::derived_from<std::remove_cvref_t<E>, LinearExprBase>;
// An operand of Real's operators: a Real or a Scalar (by any reference), or
// an expression (as a temporary only).
template <class E>
concept RealArg = std::same_as<std::remove_cvref_t<E>, Real> ||
    std::same_as<std::remove_cvref_t<E>, Scalar> ||
    (LinearExpr<E> && !std::is_lvalue_reference_v<E>);

namespace detail {

// The operands of a statement, gathered from its expression tree: N node
// indices with their weights, and a number.
template <std::size_t N>
struct Gather {
  Tape* tape = nullptr;
  std::array<std::uint32_t, N> index;
  std::array<double, N> w;
  double c = 0.0;
  std::size_t n = 0;
  [[gnu::always_inline]] void add(const Scalar& x, double k) {
    Tape& t = operand(ScalarOp::lin, x);
    if (tape && tape != &t) [[unlikely]]
      throw_mixed_tapes("Real arithmetic");
    tape = &t;
    index[n] = x.index(), w[n] = k, ++n;
  }
};

// A Real or a Scalar in an expression. Leaves are held by value (they are
// made inside the operators), expressions by reference (they are the
// caller's temporaries, alive until the end of the statement).
struct LinLeaf;
template <class C>
using Hold = std::conditional_t<std::is_same_v<C, LinLeaf>, LinLeaf, const C&>;
struct LinLeaf : LinearExprBase {
  static constexpr std::size_t size = 1;
  const Scalar& x;
  template <std::size_t N>
  [[gnu::always_inline]] void gather(Gather<N>& g, double k) const {
    g.add(x, k);
  }
};
// a + s b (s = 1 or -1).
template <class A, class B>
struct LinSum : LinearExprBase {
  static constexpr std::size_t size = A::size + B::size;
  Hold<A> a;
  Hold<B> b;
  double s;
  template <std::size_t N>
  [[gnu::always_inline]] void gather(Gather<N>& g, double k) const {
    a.gather(g, k);
    b.gather(g, s * k);
  }
};
// m a + c.
template <class A>
struct LinAffine : LinearExprBase {
  static constexpr std::size_t size = A::size;
  Hold<A> a;
  double m, c;
  template <std::size_t N>
  [[gnu::always_inline]] void gather(Gather<N>& g, double k) const {
    a.gather(g, m * k);
    g.c += k * c;
  }
};

// Operands as expression nodes: a Real or a Scalar becomes a leaf; an
// expression stays itself.
inline LinLeaf node(const Scalar& x) { return LinLeaf{{}, x}; }
template <LinearExpr E>
const std::remove_cvref_t<E>& node(const E& e) {
  return e;
}
template <class E>
using Node = std::remove_cvref_t<decltype(node(std::declval<const E&>()))>;

// Records a statement: see the header comment.
template <class E>
Scalar record(const E& e, Site where);
}  // namespace detail

// A value recorded by statements. It converts to and from Scalar freely (a
// handle to the same node), so Reals and Scalars mix.
class Real {
 public:
  Real() = default;  // empty: any use throws, as for Scalar
  Real(const Scalar& s) : s_(s) {}
  template <LinearExpr E>
  requires(!std::is_lvalue_reference_v<E>) [[gnu::always_inline]] Real(E&& e, Site where = Site::current())
      : s_(detail::record(e, where)) {}
  // A constant on the current tape, so that code written for double
  // (`T sum = 0;`) compiles with Real.
  Real(double v, Site where = Site::current()) : s_(constant(v, where)) {}

  template <LinearExpr E>
  requires(!std::is_lvalue_reference_v<E>) [[gnu::always_inline]] Real& operator=(E&& e) {
    s_ = detail::record(e, Site{});
    return *this;
  }
  Real& operator=(const Scalar& s) {
    s_ = s;
    return *this;
  }

  const Scalar& scalar() const { return s_; }
  operator const Scalar&() const { return s_; }
  double value() const { return s_.value(); }
  double grad() const { return s_.grad(); }
  void backward() const { s_.backward(); }
  std::uint32_t index() const { return s_.index(); }
  Tape& tape() const { return s_.tape(); }
  Real& named(std::string name) {
    s_.named(std::move(name));
    return *this;
  }

  // Each is one statement: x += e records x + e.
  template <RealArg E>
  Real& operator+=(E&& e);
  template <RealArg E>
  Real& operator-=(E&& e);
  template <RealArg E>
  Real& operator*=(E&& e);
  template <RealArg E>
  Real& operator/=(E&& e);
  Real& operator+=(double c);
  Real& operator-=(double c);
  Real& operator*=(double c);
  Real& operator/=(double c);

 private:
  Scalar s_;
};

namespace detail {

// Written so that, N being known here, the compiler unrolls every loop and
// keeps the operands in registers: merging runs over fixed pairs with a
// flag per operand and no early exit, and the nodes come out of one pass
// with a three-state carry.
template <class E>
[[gnu::always_inline]] inline Scalar record(const E& e, Site where) {
  constexpr std::size_t N = E::size;
  Gather<N> g;
  e.gather(g, 1.0);
  Tape& tp = *g.tape;
  // Equal operands merge first: q0 + c * q0 is one operand, weight 1 + c.
  std::array<bool, N> live;
#pragma GCC unroll 16
  for (std::size_t k = 0; k < N; ++k) {
    bool merged = false;
#pragma GCC unroll 16
    for (std::size_t j = 0; j < k; ++j) {
      const bool hit = !merged && live[j] && g.index[j] == g.index[k];
      if (hit) g.w[j] += g.w[k];
      merged = merged || hit;
    }
    live[k] = !merged;
  }
  if constexpr (N <= 2) {
    // One or two operands: one node, two with a number, pushed as usual.
    // (Through emit below, GCC compiled these statements 25% slower in det
    // by minors, where they sit in a recursion.)
    const std::uint32_t i0 = g.index[0];
    const double x0 = tp.scalar_value(i0);
    if (N == 1 || !live[N - 1]) {
      if (g.w[0] == 1.0 && g.c == 0.0) return Scalar(tp, i0);  // x itself
      return Scalar(tp, tp.push_scalar(ScalarOp::lin, i0, 0, g.w[0], g.c,
                                       lin_value(x0, 0.0, g.w[0], g.c, false), where));
    }
    const std::uint32_t i1 = g.index[N - 1];
    const double rv = lin_value(x0, tp.scalar_value(i1), g.w[0], g.w[N - 1], true);
    const std::uint32_t r = tp.push_scalar(ScalarOp::lin, i0, i1, g.w[0], g.w[N - 1], rv, where);
    if (g.c == 0.0) return Scalar(tp, r);
    return Scalar(tp, tp.push_scalar(ScalarOp::lin, r, 0, 1.0, g.c,
                                     lin_value(rv, 0.0, 1.0, g.c, false), where));
  }
  // The first node takes two operands; each further operand adds a node
  // (the running sum with weight 1, and the operand); the number, if any,
  // rides on the last node's empty slot. At most N nodes: when the tape has
  // room for N, they are written as one batch (Tape::put_scalar), else
  // pushed one by one (NoGrad, anomaly mode, a full tape).
  const auto emit = [&](auto&& push) __attribute__((always_inline)) {
    int state = 0;  // 0: nothing yet, 1: one operand waiting, 2: node r
    std::uint32_t first = 0, r = 0;
    double first_w = 0, first_x = 0, rv = 0;
#pragma GCC unroll 16
    for (std::size_t k = 0; k < N; ++k) {
      if (!live[k]) continue;
      const std::uint32_t i = g.index[k];
      const double x = tp.scalar_value(i);
      if (state == 0) {
        first = i, first_w = g.w[k], first_x = x, state = 1;
      } else if (state == 1) {
        rv = lin_value(first_x, x, first_w, g.w[k], true);
        r = push(first, i, first_w, g.w[k], rv);
        state = 2;
      } else {
        rv = lin_value(rv, x, 1.0, g.w[k], true);
        r = push(r, i, 1.0, g.w[k], rv);
      }
    }
    if (state == 1) {
      if (first_w == 1.0 && g.c == 0.0) return first;  // x itself
      rv = lin_value(first_x, 0.0, first_w, g.c, false);
      r = push(first, 0, first_w, g.c, rv);
    } else if (g.c != 0.0) {
      rv = lin_value(rv, 0.0, 1.0, g.c, false);
      r = push(r, 0, 1.0, g.c, rv);
    }
    return r;
  };
  if (tp.has_scalar_room(static_cast<std::uint32_t>(N))) [[likely]] {
    auto n = static_cast<std::uint32_t>(tp.scalar_count());
    const std::uint32_t r =
        emit([&](std::uint32_t a, std::uint32_t b, double da, double db, double v) __attribute__((always_inline)) {
          tp.put_scalar(n, ScalarOp::lin, a, b, da, db, v);
          return n++;
        });
    tp.commit_scalars(n);
    return Scalar(tp, r);
  }
  return Scalar(tp, emit([&](std::uint32_t a, std::uint32_t b, double da, double db, double v) __attribute__((always_inline)) {
                  return tp.push_scalar(ScalarOp::lin, a, b, da, db, v, where);
                }));
}

// A Real, Scalar or expression as a Scalar (an expression is recorded).
[[gnu::always_inline]] inline const Scalar& materialize(const Scalar& x) { return x; }
template <LinearExpr E>
[[gnu::always_inline]] inline Scalar materialize(const E& e) {
  return record(e, Site{});
}

// Whether a binary operator of Real's applies: an expression on one side,
// or a Real on one side and a Real or Scalar on the other. (Scalar with
// Scalar is Scalar's own.)
template <class A, class B>
concept RealPair = RealArg<A> && RealArg<B> &&(!std::same_as<std::remove_cvref_t<A>, Scalar> ||
                                               !std::same_as<std::remove_cvref_t<B>, Scalar>);
template <class A>
concept RealOne = RealArg<A> && !std::same_as<std::remove_cvref_t<A>, Scalar>;
}  // namespace detail

// ---- linear operators: no node until the statement is assigned ----

template <class A, class B>
requires detail::RealPair<A, B>
[[gnu::always_inline]] inline auto operator+(A&& a, B&& b) {
  return detail::LinSum<detail::Node<A>, detail::Node<B>>{
      {}, detail::node(a), detail::node(b), 1.0};
}
template <class A, class B>
requires detail::RealPair<A, B>
[[gnu::always_inline]] inline auto operator-(A&& a, B&& b) {
  return detail::LinSum<detail::Node<A>, detail::Node<B>>{
      {}, detail::node(a), detail::node(b), -1.0};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator-(A&& a) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), -1.0, 0.0};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator+(A&& a, double c) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), 1.0, c};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator+(double c, A&& a) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), 1.0, c};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator-(A&& a, double c) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), 1.0, -c};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator-(double c, A&& a) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), -1.0, c};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator*(A&& a, double m) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), m, 0.0};
}
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator*(double m, A&& a) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), m, 0.0};
}
// a / m is recorded as a * (1 / m): equal to rounding.
template <detail::RealOne A>
[[gnu::always_inline]] inline auto operator/(A&& a, double m) {
  return detail::LinAffine<detail::Node<A>>{{}, detail::node(a), 1.0 / m, 0.0};
}

// ---- nonlinear operations: the usual node, as a Real ----

template <class A, class B>
requires detail::RealPair<A, B> [[gnu::always_inline]] inline Real operator*(A&& a, B&& b) {
  return Real(detail::materialize(a) * detail::materialize(b));
}
template <class A, class B>
requires detail::RealPair<A, B> [[gnu::always_inline]] inline Real operator/(A&& a, B&& b) {
  return Real(detail::materialize(a) / detail::materialize(b));
}
template <detail::RealOne A>
[[gnu::always_inline]] inline Real operator/(double c, A&& a) {
  return Real(c / detail::materialize(a));
}

// Unary functions and pow/max/min of a Real or an expression (a Scalar
// alone takes Scalar's own).
#define TAPEGRAD_REAL_UNARY(f)                     \
  template <detail::RealOne A>                     \
  [[gnu::always_inline]] inline Real f(A&& a, Site where = Site::current()) { \
    return Real(f(detail::materialize(a), where)); \
  }
#define TAPEGRAD_X(name, kind) TAPEGRAD_REAL_##kind(name)
#define TAPEGRAD_REAL_structural(name)
#define TAPEGRAD_REAL_unary_op(name)
#define TAPEGRAD_REAL_binary_op(name)
#define TAPEGRAD_REAL_unary_fn(name) TAPEGRAD_REAL_UNARY(name)
#define TAPEGRAD_REAL_binary_fn(name) TAPEGRAD_REAL_BINARY(name)
#define TAPEGRAD_REAL_BINARY(f)                                                        \
  template <class A, class B>                                                          \
  requires detail::RealPair<A, B> [[gnu::always_inline]] inline Real f(A&& a, B&& b, Site where = Site::current()) { \
    return Real(f(detail::materialize(a), detail::materialize(b), where));             \
  }                                                                                    \
  template <detail::RealOne A>                                                         \
  [[gnu::always_inline]] inline Real f(A&& a, double c, Site where = Site::current()) { \
    return Real(f(detail::materialize(a), c, where));                                  \
  }                                                                                    \
  template <detail::RealOne A>                                                         \
  [[gnu::always_inline]] inline Real f(double c, A&& a, Site where = Site::current()) { \
    return Real(f(c, detail::materialize(a), where));                                  \
  }
TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
TAPEGRAD_REAL_BINARY(fmax)
TAPEGRAD_REAL_BINARY(fmin)
#undef TAPEGRAD_X
#undef TAPEGRAD_REAL_structural
#undef TAPEGRAD_REAL_unary_op
#undef TAPEGRAD_REAL_binary_op
#undef TAPEGRAD_REAL_unary_fn
#undef TAPEGRAD_REAL_binary_fn
#undef TAPEGRAD_REAL_UNARY
#undef TAPEGRAD_REAL_BINARY

// Comparisons, recorded as Scalar's are (replay checks them).
#define TAPEGRAD_REAL_COMPARE(OP)                                                             \
  template <class A, class B>                                                                 \
  requires detail::RealPair<A, B>                                                             \
  bool operator OP(A&& a, B&& b) { return detail::materialize(a) OP detail::materialize(b); } \
  template <detail::RealOne A>                                                                \
  bool operator OP(A&& a, double c) {                                                         \
    return detail::materialize(a) OP c;                                                       \
  }                                                                                           \
  template <detail::RealOne A>                                                                \
  bool operator OP(double c, A&& a) {                                                         \
    return c OP detail::materialize(a);                                                       \
  }
TAPEGRAD_REAL_COMPARE(<)
TAPEGRAD_REAL_COMPARE(<=)
TAPEGRAD_REAL_COMPARE(>)
TAPEGRAD_REAL_COMPARE(>=)
TAPEGRAD_REAL_COMPARE(==)
TAPEGRAD_REAL_COMPARE(!=)
#undef TAPEGRAD_REAL_COMPARE

// ---- compound assignment: one statement each ----

template <RealArg E>
[[gnu::always_inline]] inline Real& Real::operator+=(E&& e) {
  return *this = *this + std::forward<E>(e);
}
template <RealArg E>
[[gnu::always_inline]] inline Real& Real::operator-=(E&& e) {
  return *this = *this - std::forward<E>(e);
}
template <RealArg E>
[[gnu::always_inline]] inline Real& Real::operator*=(E&& e) {
  return *this = Real(s_ * detail::materialize(e));
}
template <RealArg E>
[[gnu::always_inline]] inline Real& Real::operator/=(E&& e) {
  return *this = Real(s_ / detail::materialize(e));
}
[[gnu::always_inline]] inline Real& Real::operator+=(double c) { return *this = *this + c; }
[[gnu::always_inline]] inline Real& Real::operator-=(double c) { return *this = *this - c; }
[[gnu::always_inline]] inline Real& Real::operator*=(double c) { return *this = *this * c; }
[[gnu::always_inline]] inline Real& Real::operator/=(double c) { return *this = *this / c; }

}  // namespace tapegrad
