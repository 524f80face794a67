#pragma once
// The scalar op table: every scalar op is one line of TAPEGRAD_SCALAR_OPS.
// From this list come the ScalarOp enum, the op names, which ops take two
// inputs, the recording functions of Scalar and Real (scalar.hpp, real.hpp),
// the replay and compiled-program dispatch, the second-order sweep, the
// trace notes, the per-node check and the CLI's function list. The
// mathematics of each math op (value, partials, second partials, gate and
// note) is one rule struct in math_rules.hpp, shared with the element-wise
// tensor ops. See docs/design.md, "The op table".
//
// Kinds:
//   structural  no rule of its own (leaves, the sink, lin, compare, ...)
//   unary_op    one input, an operator (neg: -x)
//   unary_fn    one input, a function of the same name (sin(x))
//   binary_op   two inputs, an operator (a + b)
//   binary_fn   two inputs, a function of the same name (atan2(y, x)),
//               with number forms f(x, 2.0) and f(2.0, x)
//
// The order is the op codes' order. New ops go at the end.
#include <cstddef>
#include <cstdint>

// clang-format off
#define TAPEGRAD_SCALAR_OPS(X)                                                  \
  X(sink, structural)      /* node 0: absorbs unused edges; never read */      \
  X(leaf, structural)      /* a variable: gradients accumulate here */          \
  X(constant, structural)  /* a value that takes no gradient */                 \
  X(add, binary_op)   X(sub, binary_op)   X(mul, binary_op)   X(div, binary_op) \
  X(neg, unary_op)    X(pow, binary_fn)                                         \
  X(exp, unary_fn)    X(log, unary_fn)    X(sqrt, unary_fn)   X(abs, unary_fn)  \
  X(tanh, unary_fn)   X(sigmoid, unary_fn) X(relu, unary_fn)                    \
  X(max, binary_fn)   X(min, binary_fn)                                         \
  X(item, structural)     /* a one-element tensor read as a Scalar */          \
  X(custom, structural)   /* a user's function (userfn.hpp) */                 \
  X(compare, structural)  /* a recorded comparison, checked on replay */       \
  X(lin, structural)      /* da a + db b with fixed weights (real.hpp) */      \
  X(sin, unary_fn)    X(cos, unary_fn)    X(tan, unary_fn)                      \
  X(asin, unary_fn)   X(acos, unary_fn)   X(atan, unary_fn)                     \
  X(sinh, unary_fn)   X(cosh, unary_fn)                                         \
  X(asinh, unary_fn)  X(acosh, unary_fn)  X(atanh, unary_fn)                    \
  X(erf, unary_fn)    X(erfc, unary_fn)                                         \
  X(log1p, unary_fn)  X(expm1, unary_fn)  X(log2, unary_fn)   X(log10, unary_fn) \
  X(exp2, unary_fn)   X(cbrt, unary_fn)                                         \
  X(floor, unary_fn)  X(ceil, unary_fn)   X(round, unary_fn)  X(trunc, unary_fn) \
  X(atan2, binary_fn) X(hypot, binary_fn) X(fmod, binary_fn)
// clang-format on

namespace tapegrad {

// Op codes of scalar nodes: at most 64 (6 bits packed beside the input index).
enum class ScalarOp : std::uint8_t {
#define TAPEGRAD_X(name, kind) name,
  TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
      count_
};
static_assert(static_cast<int>(ScalarOp::count_) <= 64, "op codes have 6 bits");

namespace detail {
enum class OpKind : std::uint8_t { structural, unary_op, unary_fn, binary_op, binary_fn };
inline constexpr OpKind kOpKinds[] = {
#define TAPEGRAD_X(name, kind) OpKind::kind,
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
};
inline constexpr const char* kOpNames[] = {
#define TAPEGRAD_X(name, kind) #name,
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
};
}  // namespace detail

constexpr const char* scalar_op_name(ScalarOp op) {
  return detail::kOpNames[static_cast<std::size_t>(op)];
}
constexpr detail::OpKind scalar_op_kind(ScalarOp op) {
  return detail::kOpKinds[static_cast<std::size_t>(op)];
}
// Ops with two inputs (a and b); the others use a only.
constexpr bool scalar_op_binary(ScalarOp op) {
  const detail::OpKind k = scalar_op_kind(op);
  return k == detail::OpKind::binary_op || k == detail::OpKind::binary_fn ||
         op == ScalarOp::compare || op == ScalarOp::lin;
}
// Ops with a rule in math_rules.hpp.
constexpr bool scalar_op_math(ScalarOp op) {
  return scalar_op_kind(op) != detail::OpKind::structural;
}

// How an op sends its gradient down, in the words of backpropagation's
// gate patterns (docs/backprop.md): the inspection tools draw and explain
// each edge by it.
enum class Gate : std::uint8_t {
  none,         // leaves and the like
  distributes,  // local partial 1 (or a fixed weight): add, sub, lin
  switches,     // each input gets the other one: mul
  routes,       // all or nothing: max, min, relu
  scales,       // a local partial computed from the values: exp, sin, ...
  copies,       // the same gradient to several places: sum, mean, item
};
const char* gate_name(Gate g);

}  // namespace tapegrad
