#pragma once
// Private: the value, partials and second partials of a recorded scalar op
// by op code, dispatched over the op table (op_table.hpp) to each op's Rule
// (math_rules.hpp). Both replays use it (replay.cpp, program_run.cpp), and
// so do the curvature sweep (higher.cpp) and the per-node check.
#include <array>
#include <cstddef>
#include <utility>

#include "tapegrad/scalar.hpp"

namespace tapegrad::detail {

// {0, 0, 0} for structural ops (leaves, item, custom, compare) and for lin,
// whose rule needs its weights (lin_value): callers handle those first.
inline Partials eval(ScalarOp op, double x, double y) {
  switch (op) {
#define TAPEGRAD_X(name, kind) TAPEGRAD_EVAL_##kind(name)
#define TAPEGRAD_EVAL_structural(name)
#define TAPEGRAD_EVAL_unary_op(name) \
  case ScalarOp::name:               \
    return first1<ScalarOp::name>(x);
#define TAPEGRAD_EVAL_unary_fn(name) TAPEGRAD_EVAL_unary_op(name)
#define TAPEGRAD_EVAL_binary_op(name) \
  case ScalarOp::name:                \
    return first2<ScalarOp::name>(x, y);
#define TAPEGRAD_EVAL_binary_fn(name) TAPEGRAD_EVAL_binary_op(name)
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_EVAL_structural
#undef TAPEGRAD_EVAL_unary_op
#undef TAPEGRAD_EVAL_unary_fn
#undef TAPEGRAD_EVAL_binary_op
#undef TAPEGRAD_EVAL_binary_fn
    default:
      return {0, 0, 0};
  }
}

// The second partials of op at operands x, y and value v = f(x, y). Zero
// for ops that are linear or piecewise linear (Rule::linear): at their kinks
// the first partial jumps and the documented policy gives 0 curvature.
template <ScalarOp O>
Second second_of(double x, double y, double v) {
  using R = Rule<O>;
  if constexpr (Linear<R>)
    return {0, 0, 0};
  else if constexpr (Curved2<R>)
    return R::d2(x, y, v);
  else
    return {R::d2(x, v), 0, 0};
}
inline Second second(ScalarOp op, double x, double y, double v) {
  switch (op) {
#define TAPEGRAD_SECOND_structural(name)
#define TAPEGRAD_SECOND_math(name) \
  case ScalarOp::name:             \
    return second_of<ScalarOp::name>(x, y, v);
#define TAPEGRAD_SECOND_unary_op(name) TAPEGRAD_SECOND_math(name)
#define TAPEGRAD_SECOND_unary_fn(name) TAPEGRAD_SECOND_math(name)
#define TAPEGRAD_SECOND_binary_op(name) TAPEGRAD_SECOND_math(name)
#define TAPEGRAD_SECOND_binary_fn(name) TAPEGRAD_SECOND_math(name)
#undef TAPEGRAD_X
#define TAPEGRAD_X(name, kind) TAPEGRAD_SECOND_##kind(name)
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_SECOND_structural
#undef TAPEGRAD_SECOND_math
#undef TAPEGRAD_SECOND_unary_op
#undef TAPEGRAD_SECOND_unary_fn
#undef TAPEGRAD_SECOND_binary_op
#undef TAPEGRAD_SECOND_binary_fn
    default:
      return {0, 0, 0};
  }
}

// Whether an op has second partials at all (see second()).
namespace table {
template <ScalarOp O>
constexpr bool curved_op() {
  if constexpr (scalar_op_math(O))
    return !Linear<Rule<O>>;
  else
    return false;
}
template <std::size_t... I>
constexpr auto curved_list(std::index_sequence<I...>) {
  return std::array<bool, sizeof...(I)>{curved_op<static_cast<ScalarOp>(I)>()...};
}
inline constexpr auto kCurved =
    curved_list(std::make_index_sequence<static_cast<std::size_t>(ScalarOp::count_)>());
template <ScalarOp O>
constexpr Gate gate_op() {
  if constexpr (scalar_op_math(O))
    return Rule<O>::gate;
  else
    return O == ScalarOp::lin ? Gate::distributes : Gate::none;
}
template <std::size_t... I>
constexpr auto gate_list(std::index_sequence<I...>) {
  return std::array<Gate, sizeof...(I)>{gate_op<static_cast<ScalarOp>(I)>()...};
}
inline constexpr auto kGates =
    gate_list(std::make_index_sequence<static_cast<std::size_t>(ScalarOp::count_)>());
}  // namespace table
constexpr bool curved(ScalarOp op) { return table::kCurved[static_cast<std::size_t>(op)]; }
constexpr Gate scalar_gate(ScalarOp op) { return table::kGates[static_cast<std::size_t>(op)]; }

// The trace's note for input `slot` of a math op whose local partial there is
// `local` ("cos x", "routes, this input lost"); nullptr for structural ops.
const char* scalar_note(ScalarOp op, int slot, double local);

}  // namespace tapegrad::detail
