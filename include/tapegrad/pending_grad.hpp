#pragma once
// A parameter's gradient that backward may leave unwritten (lazily zeroed,
// or kept as the two factors of an outer product).
#include <cstddef>
#include <cstdint>

#include "tapegrad/dtype.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad {

// The state of a caller-owned leaf gradient (a Parameter's) that backward
// may leave unwritten until someone reads it:
//  - written: the memory holds the gradient;
//  - zero: nothing has reached it since it was zeroed; the memory holds
//    stale values, and the first rule to write it overwrites rather than
//    adds (Tape::grad_for_write);
//  - outer: the gradient is the outer product a b^T (rows x cols) of two
//    stored factors, the weight gradient of a batch of one row
//    (Tape::defer_outer). Keeping rows + cols values instead of writing
//    rows x cols saves a pass over the largest gradients; optimiser updates
//    read the factors directly (nn::Optimizer), every other reader writes
//    the product out first (settle()).
// The nodes that alias one gradient share its PendingGrad.
struct PendingGrad {
  enum class State : std::uint8_t { kWritten, kZero, kOuter };
  State state = State::kWritten;
  bool outer_ok = false;  // whether factors may be kept instead of the product
  void* memory = nullptr;
  DType dtype = DType::f32;
  std::size_t bytes = 0;            // of the gradient in memory
  std::int64_t rows = 0, cols = 0;  // for kOuter: element (r, c) is a[r] * b[c]
  Buffer a, b;

  bool pending() const { return state != State::kWritten; }
  bool zero() const { return state == State::kZero; }
  // Writes a pending gradient (zeros, or the product of the factors) into
  // memory; the state is kWritten after it.
  void settle();
};

}  // namespace tapegrad
