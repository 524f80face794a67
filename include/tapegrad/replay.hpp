#pragma once
// Record once, replay many. A tape already holds everything needed to
// compute its function again: op codes, inputs, numbers. Replay re-runs that
// forward at new leaf values (no user code, no recording, no allocation) and
// the reverse sweep follows as usual, so a gradient at a new point costs a
// pass over the tape instead of rebuilding it.
//
//   tg::Tape tape;
//   tg::Scalar x = tape.variable(1), y = tape.variable(2);
//   tg::Scalar f = x * y + tg::exp(x);      // recorded once
//   tg::Function fn(tape, {x, y}, f);
//   double g[2];
//   double v = fn.gradient(std::array{3.0, 4.0}, g);   // replayed
//
// What replay cannot see is control flow in the user's code: an `if` on a
// value took one branch when the tape was recorded. Comparisons made through
// the library (x < y, x >= 0.5, ... on Scalars) are recorded with their
// outcome and source line, and replay reports any that would now go the
// other way; Function throws BranchChanged, naming the comparison and the
// line. max, min, relu and abs are ops, not branches: they re-decide on every
// replay, as they should.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/scalar.hpp"
#include "tapegrad/tape_scope.hpp"

namespace tapegrad {

// What a replay found: the recorded comparisons whose outcome changed.
struct ReplayStatus {
  std::uint32_t flipped = 0;    // how many
  std::uint32_t first = kNone;  // index into Tape::compares() of the first
  bool ok() const { return flipped == 0; }
  // "comparison s12 (x < y at f.cpp:40 (fn)) was true when recorded, now false
  // (1.5 < 1.25); ..." for the first one, or "" when ok().
  std::string describe(const Tape& tape) const;
};

// Thrown by Function when a replay would follow a branch other than the one
// recorded: the function must be recorded again at the new point.
class BranchChanged : public Error {
 public:
  BranchChanged(const std::string& what, CompareRecord where) : Error(what), comparison_(where) {}
  const CompareRecord& comparison() const { return comparison_; }

 private:
  CompareRecord comparison_;
};

namespace detail {
struct Program;
}

// What Function::optimize() did to the recorded tape.
struct OptimizeStats {
  std::uint32_t recorded = 0;     // op nodes in the recorded range
  std::uint32_t dead = 0;         // dropped: they do not reach the output
  std::uint32_t folded = 0;       // dropped: they do not depend on an input
  std::uint32_t merged = 0;       // dropped: the same op on the same inputs as an earlier one
  std::uint32_t ops = 0;          // ops replayed
  std::uint32_t statements = 0;   // rows of the reverse sweep after preaccumulation
  std::uint32_t edges = 0;        // weighted edges in those rows
  std::uint32_t blocks = 0;       // runs of same-shape statements executed as one loop per op
  std::uint32_t fixed = 0;        // blocks of linear statements, whose weights are computed once
  std::uint32_t chains = 0;       // single statements of at most two operands, each op reading
                                  // the one before: weights by forward mode, in registers
  std::uint32_t comparisons = 0;  // recorded comparisons still checked
};

// A recorded scalar function R^n -> R as a reusable object: its inputs are
// leaves (variables) on the tape, its output a Scalar recorded after them.
// Each call sets the inputs, replays, and (for gradient) sweeps. The tape is
// left holding the values and gradients of the last call, so to_dot, trace,
// check_nodes and anomaly detection work on it as on a freshly recorded one.
class Function {
 public:
  // Uses a tape that already holds the computation; the tape must outlive
  // the Function and must not be cleared or rewound below `output`.
  Function(Tape& tape, std::vector<Scalar> inputs, Scalar output);
  // Records f on a tape of its own, the current tape while f runs (so
  // numbers such as `Scalar s = 0` land on it): f gets n variables (at x0)
  // and returns the output Scalar.
  template <class F>
  static Function record(std::span<const double> x0, F&& f) {
    auto tape = std::make_unique<Tape>();
    TapeScope scope(*tape);
    std::vector<Scalar> in;
    in.reserve(x0.size());
    for (double v : x0) in.push_back(tape->variable(v));
    Scalar out = f(std::span<const Scalar>(in));
    Function fn(*tape, std::move(in), out);
    fn.owned_ = std::move(tape);
    return fn;
  }

  Function(Function&&) noexcept;
  Function& operator=(Function&&) noexcept;
  ~Function();

  // Compiles the recorded tape into a replay program, once: nodes that do
  // not reach the output are dropped, nodes that do not depend on an input
  // become numbers, an op equal to an earlier one (same op, same inputs,
  // same numbers) is that one, and each single-use chain of ops is preaccumulated into
  // one row of the reverse sweep whose weights are the products of the
  // partials along it (one row per statement, as an expression-template
  // engine records, but found after the fact). Values and gradients equal
  // the unoptimised replay's up to rounding (the weights multiply partials
  // in another order). Consecutive statements of one shape that do not read
  // each other (a stencil's points, a layer's neurons) then run together, one
  // loop per op over all of them. After optimize(), calls no longer write the tape: it
  // keeps showing the recorded point for inspection (use a Function without
  // optimize() to inspect a replayed point). Pure scalar tapes only.
  OptimizeStats optimize();
  bool optimized() const { return prog_ != nullptr; }

  std::size_t inputs() const { return in_.size(); }
  Tape& tape() const { return *tape_; }
  const Scalar& output() const { return out_; }

  // f(x) by replay. Throws BranchChanged if a recorded comparison flips, and
  // Error if x has the wrong size.
  double value(std::span<const double> x);
  // f(x), and its gradient written to grad (size inputs()).
  double gradient(std::span<const double> x, std::span<double> grad);
  // The same, without throwing on a flipped comparison: the status says
  // whether the results hold (they are those of the recorded branch).
  ReplayStatus try_gradient(std::span<const double> x, std::span<double> grad, double* value);

  // Beyond the gradient (higher.hpp), each by one replay and the sweeps; each
  // returns f(x) and throws BranchChanged like value(). An optimized
  // Function replays its recorded tape for these.
  // The directional derivative of f at x along v (forward mode).
  double jvp(std::span<const double> x, std::span<const double> v, double* derivative);
  // H v into hv, and the gradient into grad when it is not empty.
  double hvp(std::span<const double> x, std::span<const double> v, std::span<double> hv,
             std::span<double> grad = {});
  // The Hessian (inputs() x inputs(), row-major) into H, and the gradient.
  double hessian(std::span<const double> x, std::span<double> H, std::span<double> grad = {});

 private:
  void set_inputs(std::span<const double> x, const char* what);
  void replay_checked();
  double run_program(std::span<const double> x, std::span<double> grad, bool want_grad);
  std::unique_ptr<Tape> owned_;
  Tape* tape_;
  std::vector<Scalar> in_;
  Scalar out_;
  std::uint32_t s_hi_ = 0, t_hi_ = 0;
  std::unique_ptr<detail::Program> prog_;
};

}  // namespace tapegrad
