#pragma once
// The op registry: each op's file registers example calls of itself, so
// `tapegrad gradcheck` checks every op without knowing them by name. Adding
// an op adds its registration next to its code; nothing else changes.
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct OpCheckCase {
  std::string op;             // the op's name, e.g. "matmul"
  std::vector<Shape> shapes;  // one per input
  std::function<Tensor(std::span<const Tensor>)> fn;
  double lo = -2, hi = 2;  // inputs drawn from [lo, hi)
  double gap = 0;          // and kept at least this far from 0 (kinks of relu, abs)
};

void register_op_check(OpCheckCase c);
const std::vector<OpCheckCase>& op_check_cases();

// The scalar ops whose checks are registered (every math op of the op table,
// when none is missing).
std::vector<ScalarOp> scalar_ops_with_checks();

// Registers cases at static-initialisation time: one per op file.
struct OpCheckRegistrar {
  OpCheckRegistrar(std::initializer_list<OpCheckCase> cases) {
    for (const OpCheckCase& c : cases) register_op_check(c);
  }
};

}  // namespace tapegrad
