#pragma once
// Gradients of long loops in bounded memory: binomial checkpointing.
//
// A time-stepping simulation records every intermediate value, so its tape
// grows with the number of steps. checkpointed_gradient() differentiates
// objective(state after n steps) with respect to the initial state and the
// parameters the step reads while holding at most `snapshots` copies of
// the state (the initial one included) and the tape of one step: it runs
// steps forward without keeping their tapes, stores states at the points
// the binomial schedule prescribes, and records and sweeps each step once,
// last first. The number of steps it runs again is the least any schedule
// with that many snapshots can do (Griewank and Walther's revolve,
// ACM TOMS 26(1), 2000): advances == checkpoint_advances(n, snapshots).
//
//   auto step = [](std::span<tg::Scalar> q, std::span<const tg::Scalar> p, std::int64_t) {
//     ... q[i] = f(q, p) ...  // one time step, in place
//   };
//   auto objective = [](std::span<const tg::Scalar> q, std::span<const tg::Scalar>) { ... };
//   tg::LoopGradient g = tg::checkpointed_gradient(q0, params, 1'000'000, 20, step, objective);
//
// The step is called many times (n plus the recomputations) and must give
// the same result each time for the same state: no hidden state of its own.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// One step of the loop: advances `state` in place (assign new Scalars to
// its elements); `params` are read-only; `i` is the step's number.
using LoopStep =
    std::function<void(std::span<Scalar> state, std::span<const Scalar> params, std::int64_t i)>;
// The quantity whose gradient is taken, from the final state.
using LoopObjective =
    std::function<Scalar(std::span<const Scalar> state, std::span<const Scalar> params)>;

struct LoopGradient {
  double value = 0;                 // objective(final state)
  std::vector<double> grad_state;   // d value / d initial state
  std::vector<double> grad_params;  // d value / d params
  std::uint64_t advances = 0;       // steps run forward without a tape (the recomputation)
  std::uint64_t taped = 0;          // steps recorded and swept: n
  std::size_t max_snapshots = 0;    // states held at once, the initial one included
  std::size_t peak_tape_bytes = 0;  // the largest the one step tape grew
};

// How the steps are run.
struct LoopOptions {
  // Record the step once (at the initial state, as step 0) and replay the
  // compiled recording (vector_function.hpp) for every step run forward and
  // every step swept, instead of running the step's code each time. Much
  // faster for a step of many small ops; valid only for a step that does
  // the same operations whatever its step number i and whose recorded
  // comparisons keep their outcome (a flip throws BranchChanged).
  bool replay = false;
};

// With at most `snapshots` (>= 1) stored states; snapshots >= n stores every
// state and runs each step forward once.
LoopGradient checkpointed_gradient(std::span<const double> state0, std::span<const double> params,
                                   std::int64_t n, int snapshots, const LoopStep& step,
                                   const LoopObjective& objective, LoopOptions options = {});

// Whether the loop has ended, from the state's values after `steps` steps.
using LoopDone = std::function<bool(std::span<const double> state, std::int64_t steps)>;

// Online checkpointing: the same gradient for a loop whose length is found
// while it runs (a simulation stepped until an event), ending after the
// first step for which done() holds; more than max_steps steps is an
// error. The first run stores at most `snapshots` states evenly spaced,
// thinning them to every other one (doubling the spacing) whenever they
// fill up; the reversal then takes the segments between them last first,
// each with the binomial schedule and the snapshots the earlier segments do
// not hold. It runs the loop forward once more than the offline schedule
// would need at most, plus what the even spacing costs over revolve's
// optimal one.
LoopGradient checkpointed_gradient_online(std::span<const double> state0,
                                          std::span<const double> params, int snapshots,
                                          const LoopStep& step, const LoopDone& done,
                                          const LoopObjective& objective,
                                          std::int64_t max_steps = 1'000'000'000,
                                          LoopOptions options = {});

// Forward over reverse through the same schedule: besides the gradient,
// H v, the Hessian of objective(final state) with respect to (initial
// state, params) applied to v = (v_state, v_params). Each state snapshot
// carries its tangent along v; each step, recorded once on the way back,
// gives its tangent (forward mode), its adjoint and the adjoint's tangent
// (an HVP of the step's adjoint-weighted outputs). Same snapshots and
// recomputation count as checkpointed_gradient; each step costs a few
// sweeps instead of one.
struct LoopHvp : LoopGradient {
  std::vector<double> hv_state, hv_params;  // H v, split like the inputs
};
LoopHvp checkpointed_hvp(std::span<const double> state0, std::span<const double> params,
                         std::int64_t n, int snapshots, const LoopStep& step,
                         const LoopObjective& objective, std::span<const double> v_state,
                         std::span<const double> v_params);
// The same H v from one tape holding all n steps (for comparison).
LoopHvp taped_hvp(std::span<const double> state0, std::span<const double> params, std::int64_t n,
                  const LoopStep& step, const LoopObjective& objective,
                  std::span<const double> v_state, std::span<const double> v_params);

// The same gradient from one tape holding all n steps (for comparison: its
// memory grows with n).
LoopGradient taped_gradient(std::span<const double> state0, std::span<const double> params,
                            std::int64_t n, const LoopStep& step, const LoopObjective& objective);

// ---- tensor states ----
// The same checkpointed gradient for a loop whose state is a list of
// float64 tensors (a field on a grid, a network's hidden state): the step
// replaces the tensors of `state` with new ones of the same shapes, the
// objective returns a one-element tensor. Snapshots hold the tensors'
// values; each step is recorded on one tape, cleared between steps, so the
// memory is at most `snapshots` states plus one step's tape. Same schedule
// and recomputation count as for Scalar states.
struct TensorValue {
  Shape shape;
  std::vector<double> values;  // row-major, shape.numel() of them
};
using TensorLoopStep =
    std::function<void(std::span<Tensor> state, std::span<const Tensor> params, std::int64_t i)>;
using TensorLoopObjective =
    std::function<Tensor(std::span<const Tensor> state, std::span<const Tensor> params)>;
struct TensorLoopGradient {
  double value = 0;
  std::vector<std::vector<double>> grad_state;   // per state tensor, row-major
  std::vector<std::vector<double>> grad_params;  // per parameter tensor
  std::uint64_t advances = 0, taped = 0;
  std::size_t max_snapshots = 0, peak_tape_bytes = 0;
};
TensorLoopGradient checkpointed_gradient(const std::vector<TensorValue>& state0,
                                         const std::vector<TensorValue>& params, std::int64_t n,
                                         int snapshots, const TensorLoopStep& step,
                                         const TensorLoopObjective& objective);
// All n steps on one tape (for comparison: its memory grows with n).
TensorLoopGradient taped_gradient(const std::vector<TensorValue>& state0,
                                  const std::vector<TensorValue>& params, std::int64_t n,
                                  const TensorLoopStep& step, const TensorLoopObjective& objective);

// The least number of forward steps run again to reverse n steps with s
// snapshots: r n - C(s + r, s + 1) for the r with C(s + r - 1, s) < n <=
// C(s + r, s) (revolve's bound); n (n - 1) / 2 for s = 1.
std::uint64_t checkpoint_advances(std::int64_t n, int snapshots);

}  // namespace tapegrad
