#pragma once
// How the rest of tapegrad reads a Rule (math_rules.hpp): the value and
// partials of an op in one call (first1, first2), whether it has second
// partials, and the compile-time check that every math op of the op table
// has a complete rule.
#include "tapegrad/math_rules.hpp"

namespace tapegrad::detail {

template <class R>
concept HasFirst1 = requires(double x) { R::first(x); };
template <class R>
concept HasFirst2 = requires(double x) { R::first(x, x); };
template <class R>
concept Curved1 = requires(double x) { R::d2(x, x); };
template <class R>
concept Curved2 = requires(double x) { R::d2(x, x, x); };
template <class R>
concept Linear = R::linear;

// The value and partial of a unary op at x; of a binary op at (a, b).
template <ScalarOp O>
[[gnu::always_inline]] inline Partials first1(double x) {
  using R = Rule<O>;
  if constexpr (HasFirst1<R>) {
    return R::first(x);
  } else {
    const double v = R::f(x);
    return {v, R::d(x, v), 0};
  }
}
template <ScalarOp O>
[[gnu::always_inline]] inline Partials first2(double a, double b) {
  using R = Rule<O>;
  if constexpr (HasFirst2<R>)
    return R::first(a, b);
  else
    return {R::f(a, b), R::da(a, b), R::db(a, b)};
}

// Each math op has exactly one of: second partials, or `linear`.
#define TAPEGRAD_X(name, kind) TAPEGRAD_CHECK_##kind(name)
#define TAPEGRAD_CHECK_structural(name)
#define TAPEGRAD_CHECK_unary_op(name)                                                  \
  static_assert(Curved1<Rule<ScalarOp::name>> != Linear<Rule<ScalarOp::name>>,        \
                "Rule<ScalarOp::" #name ">: give d2(x, y), or linear = true, not both");
#define TAPEGRAD_CHECK_unary_fn(name) TAPEGRAD_CHECK_unary_op(name)
#define TAPEGRAD_CHECK_binary_op(name)                                                 \
  static_assert(Curved2<Rule<ScalarOp::name>> != Linear<Rule<ScalarOp::name>>,        \
                "Rule<ScalarOp::" #name ">: give d2(a, b, v), or linear = true, not both");
#define TAPEGRAD_CHECK_binary_fn(name) TAPEGRAD_CHECK_binary_op(name)
TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_CHECK_structural
#undef TAPEGRAD_CHECK_unary_op
#undef TAPEGRAD_CHECK_unary_fn
#undef TAPEGRAD_CHECK_binary_op
#undef TAPEGRAD_CHECK_binary_fn

}  // namespace tapegrad::detail
