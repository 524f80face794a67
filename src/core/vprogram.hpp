#pragma once
// Private: the compiled form of a VectorFunction (vector_function.cpp builds
// and runs it; sparsity.cpp reads its structure). Read-only once built; all
// per-call state is in a Workspace, one per thread.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/scalar.hpp"
#include "tapegrad/site.hpp"

namespace tapegrad::detail {

// One op. a and b are value slots: slot 0 holds 0 (the unused operand of a
// unary op), slots 1..n the inputs, then the numbers, then one slot per op
// in order (op k writes slot first_op + k). p and q are lin's weights
// (p a + q b), or for a user's function q is its id.
struct VInstr {
  ScalarOp op;
  std::uint32_t a, b;
  double p, q;
};

// A recorded comparison, checked after each forward sweep.
struct VCompare {
  Compare how;
  std::uint32_t a, b;  // value slots
  bool recorded;
  CompareRecord where;
  std::string a_name, b_name;  // for the message
};

struct VProgram {
  std::uint32_t n = 0;         // inputs: slots 1..n
  std::uint32_t first_op = 0;  // slot of the first op; numbers are slots n+1 .. first_op-1
  std::vector<double> numbers;
  std::vector<VInstr> ops;
  std::vector<std::uint32_t> out;  // the value slot of each output
  std::vector<VCompare> compares;
  std::uint32_t slots() const { return first_op + static_cast<std::uint32_t>(ops.size()); }
};

// Per-thread working arrays, grown on demand and reused.
struct Workspace {
  std::vector<double> v, pa, pb, g, t, h;
};
Workspace& thread_workspace();

// The forward sweep at x: values and local partials into ws, then the
// comparisons checked (BranchChanged on a flip).
void forward(const VProgram& P, std::span<const double> x, Workspace& ws);
// Tangents for k directions (ws.t, k per slot), seeded by the caller in the
// input slots: t[slot * k + d].
void tangents(const VProgram& P, std::uint32_t k, Workspace& ws);
// Reverse sweep carrying k adjoint directions in ws.g (k per slot), seeded
// by the caller in the output slots.
void adjoints(const VProgram& P, std::uint32_t k, Workspace& ws);
// Forward over reverse for k directions: ws.t holds the tangents (from
// tangents()), ws.g the first-order adjoints (one direction, seeded with the
// weights); the second-order adjoints accumulate into ws.h (k per slot).
void second_adjoints(const VProgram& P, std::uint32_t k, Workspace& ws);
// Prepares ws.t / ws.g / ws.h as zeroed arrays of k per slot.
void zeroed(std::vector<double>& a, std::size_t size);

}  // namespace tapegrad::detail
