#pragma once
// The binomial reversal of a loop (loop.hpp), shared by the scalar-state
// loops (src/core/loop.cpp) and the tensor-state one
// (src/ops/loop_tensor.cpp): how many steps to run before storing a state,
// and the recursion that reverses steps [a, b).
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace tapegrad::detail {

// A k in [1, l) at which the first stored state goes so that reversing l
// steps with s snapshots runs the fewest steps again (revolve's optimum).
std::int64_t best_split(std::int64_t l, std::int64_t s);

// Reverses steps [a, b) from `state` (the state at a) with s snapshots, the
// one holding `state` included: advance(state, from, to) runs steps
// [from, to) without a tape and returns the state at `to`; sweep(i, state)
// records step i from the state at i and sweeps it, moving the adjoint of
// the state at i + 1 to the state at i. held counts the states stored at
// once (max_held its peak).
template <class State, class Advance, class Sweep>
void reverse_steps(std::int64_t a, std::int64_t b, const State& state, std::int64_t s,
                   std::size_t& held, std::size_t& max_held, Advance& advance, Sweep& sweep) {
  while (b - a > 1) {
    if (s <= 1) {  // no room to store: run forward from a each time
      for (std::int64_t i = b - 1; i >= a; --i) sweep(i, advance(state, a, i));
      return;
    }
    const std::int64_t k = best_split(b - a, s);
    const State mid = advance(state, a, a + k);
    ++held;
    max_held = std::max(max_held, held);
    reverse_steps(a + k, b, mid, s - 1, held, max_held, advance, sweep);
    --held;
    b = a + k;  // then the first k steps, with every snapshot again
  }
  sweep(a, state);
}

}  // namespace tapegrad::detail
