#pragma once
// Private: the value and partials of a recorded scalar op from its operands,
// by op code, with the same rule functions recording uses (scalar.hpp). Both
// replays use it: the in-place one (replay.cpp) and the compiled program
// (program.cpp).
#include "tapegrad/scalar.hpp"

namespace tapegrad::detail {

// {0, 0, 0} for ops without a scalar rule (leaves, item, custom, compare):
// callers handle those first.
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

}  // namespace tapegrad::detail
