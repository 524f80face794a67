#pragma once
// Private: the value and partials of a recorded scalar op from its operands,
// by op code, with the same rule functions recording uses (scalar.hpp). Both
// replays use it: the in-place one (replay.cpp) and the compiled program
// (program.cpp).
#include <cmath>

#include "tapegrad/scalar.hpp"

namespace tapegrad::detail {

// {0, 0, 0} for ops without a scalar rule (leaves, item, custom, compare)
// and for lin, whose rule needs its weights (lin_value): callers handle
// those first.
inline Partials eval(ScalarOp op, double x, double y) {
  switch (op) {
    case ScalarOp::add:
      return kAdd(x, y);
    case ScalarOp::sub:
      return kSub(x, y);
    case ScalarOp::mul:
      return kMul(x, y);
    case ScalarOp::div:
      return kDiv(x, y);
    case ScalarOp::pow:
      return pow_rule(x, y);
    case ScalarOp::max:
      return kMax(x, y);
    case ScalarOp::min:
      return kMin(x, y);
    case ScalarOp::neg:
      return kNeg(x);
    case ScalarOp::exp:
      return exp_rule(x);
    case ScalarOp::log:
      return log_rule(x);
    case ScalarOp::sqrt:
      return sqrt_rule(x);
    case ScalarOp::abs:
      return kAbs(x);
    case ScalarOp::tanh:
      return tanh_rule(x);
    case ScalarOp::sigmoid:
      return sigmoid_rule(x);
    case ScalarOp::relu:
      return kRelu(x);
    default:
      return {0, 0, 0};
  }
}

// The second partials of a scalar op {d2/da2, d2/dadb, d2/db2} at operands
// x, y and value v = f(x, y). Zero for ops that are linear or piecewise
// linear (add, sub, neg, abs, relu, max, min): at their kinks the first
// partial jumps and the documented policy gives 0 curvature.
struct Second {
  double aa, ab, bb;
};
inline Second second(ScalarOp op, double x, double y, double v) {
  switch (op) {
    case ScalarOp::mul:  // d2(ab)/dadb = 1
      return {0, 1, 0};
    case ScalarOp::div: {  // d/db(1/b) = -1/b^2, d/db(-a/b^2) = 2a/b^3
      const double r = 1.0 / y;
      return {0, -r * r, 2.0 * x * r * r * r};
    }
    case ScalarOp::pow: {  // as pow_rule: the ln a terms are 0 where a <= 0
      const double aa = y == 0.0 || y == 1.0 ? 0.0 : y * (y - 1.0) * std::pow(x, y - 2.0);
      if (x <= 0.0) return {aa, 0, 0};
      const double l = std::log(x);
      return {aa, std::pow(x, y - 1.0) * (1.0 + y * l), v * l * l};
    }
    case ScalarOp::exp:  // (e^a)'' = e^a
      return {v, 0, 0};
    case ScalarOp::log:  // (ln a)'' = -1/a^2
      return {-1.0 / (x * x), 0, 0};
    case ScalarOp::sqrt:  // (a^(1/2))'' = -1/(4 a^(3/2))
      return {-0.25 / (v * v * v), 0, 0};
    case ScalarOp::tanh:  // (1 - t^2)' = -2 t (1 - t^2)
      return {-2.0 * v * (1.0 - v * v), 0, 0};
    case ScalarOp::sigmoid:  // (s (1 - s))' = s (1 - s) (1 - 2 s)
      return {v * (1.0 - v) * (1.0 - 2.0 * v), 0, 0};
    default:
      return {0, 0, 0};
  }
}

// Whether an op has second partials at all (see second()).
constexpr bool curved(ScalarOp op) {
  return op == ScalarOp::mul || op == ScalarOp::div || op == ScalarOp::pow || op == ScalarOp::exp ||
         op == ScalarOp::log || op == ScalarOp::sqrt || op == ScalarOp::tanh ||
         op == ScalarOp::sigmoid;
}

}  // namespace tapegrad::detail
