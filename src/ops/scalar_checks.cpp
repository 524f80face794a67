// The registered checks of the scalar ops (tapegrad gradcheck): every math
// op of the op table, recorded on Scalars by the same functions user code
// calls, at random points of its domain, and for binary ops with a plain
// number on either side as well. The domains are the one thing an op adds
// here; a math op without one fails the test "every math op of the table is
// registered" (tests/ops/test_math.cpp).
#include <fmt/format.h>

#include <type_traits>

#include "tapegrad/ops.hpp"
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace {

struct Domain {
  ScalarOp op;
  double lo, hi, gap = 0;  // inputs in [lo, hi), at least gap from 0
};
// clang-format off
constexpr Domain kDomains[] = {
    {ScalarOp::add, -2, 2},      {ScalarOp::sub, -2, 2},     {ScalarOp::mul, -2, 2},
    {ScalarOp::div, 0.5, 2},     {ScalarOp::neg, -2, 2},     {ScalarOp::pow, 0.5, 2},
    {ScalarOp::exp, -2, 2},      {ScalarOp::log, 0.2, 3},    {ScalarOp::sqrt, 0.2, 3},
    {ScalarOp::abs, -2, 2, 0.05}, {ScalarOp::tanh, -3, 3},   {ScalarOp::sigmoid, -4, 4},
    {ScalarOp::relu, -2, 2, 0.05}, {ScalarOp::max, -2, 2},   {ScalarOp::min, -2, 2},
    {ScalarOp::sin, -3, 3},      {ScalarOp::cos, -3, 3},     {ScalarOp::tan, -1.2, 1.2},
    {ScalarOp::asin, -0.9, 0.9}, {ScalarOp::acos, -0.9, 0.9}, {ScalarOp::atan, -3, 3},
    {ScalarOp::sinh, -2, 2},     {ScalarOp::cosh, -2, 2},    {ScalarOp::asinh, -3, 3},
    {ScalarOp::acosh, 1.2, 3},   {ScalarOp::atanh, -0.9, 0.9}, {ScalarOp::erf, -2, 2},
    {ScalarOp::erfc, -2, 2},     {ScalarOp::log1p, -0.8, 3}, {ScalarOp::expm1, -2, 2},
    {ScalarOp::log2, 0.2, 3},    {ScalarOp::log10, 0.2, 3},  {ScalarOp::exp2, -2, 2},
    {ScalarOp::cbrt, -3, 3, 0.2}, {ScalarOp::floor, 0.1, 0.4}, {ScalarOp::ceil, 0.1, 0.4},
    {ScalarOp::round, 0.1, 0.4}, {ScalarOp::trunc, 0.1, 0.4}, {ScalarOp::atan2, -2, 2, 0.1},
    {ScalarOp::hypot, -2, 2, 0.1}, {ScalarOp::fmod, 1, 2},
};
// clang-format on

// One node of op over a and b (b unused by unary ops), by op code.
template <class A, class B>
Scalar record(ScalarOp op, const A& a, const B& b) {
  switch (op) {
#define TAPEGRAD_X(name, kind) TAPEGRAD_REC_##kind(name)
#define TAPEGRAD_REC_structural(name)
#define TAPEGRAD_REC_unary_op(name) \
  case ScalarOp::name:              \
    if constexpr (std::is_same_v<A, Scalar>)  \
      return detail::unary_op<ScalarOp::name>(a, Site{}); \
    else                                       \
      break;
#define TAPEGRAD_REC_unary_fn(name) TAPEGRAD_REC_unary_op(name)
#define TAPEGRAD_REC_binary_op(name) \
  case ScalarOp::name:               \
    return detail::binary_op<ScalarOp::name>(a, b, Site{});
#define TAPEGRAD_REC_binary_fn(name) TAPEGRAD_REC_binary_op(name)
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_REC_structural
#undef TAPEGRAD_REC_unary_op
#undef TAPEGRAD_REC_unary_fn
#undef TAPEGRAD_REC_binary_op
#undef TAPEGRAD_REC_binary_fn
    default:
      break;
  }
  throw Error(fmt::format("scalar checks: '{}' is not a math op", scalar_op_name(op)));
}

// A Scalar as a rank-0 float64 tensor, for the registry's tensor functions.
Tensor as_tensor(const Scalar& s) { return scale(s, ones(Shape{}, {DType::f64, false})); }

const OpCheckRegistrar kScalarChecks = [] {
  using In = std::span<const Tensor>;
  for (const Domain& d : kDomains) {
    const ScalarOp op = d.op;
    const std::string name = std::string(scalar_op_name(op)) + "/scalar";
    if (!scalar_op_binary(op)) {
      register_op_check({name, {Shape{}},
                         [op](In x) { return as_tensor(record(op, x[0].item(), 0.0)); }, d.lo,
                         d.hi, d.gap});
      continue;
    }
    register_op_check({name, {Shape{}, Shape{}},
                       [op](In x) { return as_tensor(record(op, x[0].item(), x[1].item())); },
                       d.lo, d.hi, d.gap});
    // A number in either slot rides on the node: both forms are checked. The
    // number is the middle of the domain, nudged off the diagonal of fmod,
    // max and min.
    const double c = 0.5 * (d.lo + d.hi) + 0.0137;
    register_op_check({name + ",number", {Shape{}},
                       [op, c](In x) { return as_tensor(record(op, x[0].item(), c)); }, d.lo,
                       d.hi, d.gap});
    register_op_check({"number," + name, {Shape{}},
                       [op, c](In x) { return as_tensor(record(op, c, x[0].item())); }, d.lo,
                       d.hi, d.gap});
  }
  return OpCheckRegistrar{};
}();

}  // namespace

std::vector<ScalarOp> scalar_ops_with_checks() {
  std::vector<ScalarOp> out;
  for (const Domain& d : kDomains) out.push_back(d.op);
  return out;
}

}  // namespace tapegrad
