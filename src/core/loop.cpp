// Binomial checkpointing of a loop (loop.hpp).
#include "tapegrad/loop.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace tapegrad {
namespace {

// C(a, b), saturating at 2^62 (the schedule only compares it with n).
double binom(std::int64_t a, std::int64_t b) {
  if (b < 0 || b > a) return 0;
  b = std::min(b, a - b);
  double c = 1;
  for (std::int64_t i = 1; i <= b; ++i) {
    c = c * static_cast<double>(a - b + i) / static_cast<double>(i);
    if (c > 4.6e18) return 4.6e18;
  }
  return std::round(c);
}

// The least recomputation for l steps and s snapshots (the state at the
// start included): see checkpoint_advances.
std::uint64_t least(std::int64_t l, std::int64_t s) {
  if (l <= 1) return 0;
  if (s <= 1) return static_cast<std::uint64_t>(l) * static_cast<std::uint64_t>(l - 1) / 2;
  std::int64_t r = 0;
  while (binom(s + r, s) < static_cast<double>(l)) ++r;
  return static_cast<std::uint64_t>(static_cast<double>(r) * static_cast<double>(l) -
                                    binom(s + r, s + 1));
}

// The cost of reversing l steps with s snapshots when the first stored
// state is k steps in: run k steps, reverse the last l - k with one
// snapshot fewer, then the first k with all of them.
std::uint64_t split_cost(std::int64_t l, std::int64_t s, std::int64_t k) {
  return static_cast<std::uint64_t>(k) + least(l - k, s - 1) + least(k, s);
}

// A k in [1, l) with split_cost(l, s, k) == least(l, s). The cost is
// convex in k, so a ternary search finds its minimum in O(log l).
std::int64_t best_split(std::int64_t l, std::int64_t s) {
  std::int64_t lo = 1, hi = l - 1;
  while (hi - lo > 2) {
    const std::int64_t m1 = lo + (hi - lo) / 3, m2 = hi - (hi - lo) / 3;
    if (split_cost(l, s, m1) <= split_cost(l, s, m2))
      hi = m2;
    else
      lo = m1;
  }
  std::int64_t best = lo;
  for (std::int64_t k = lo + 1; k <= hi; ++k)
    if (split_cost(l, s, k) < split_cost(l, s, best)) best = k;
  return best;
}

class Reverser {
 public:
  void set_steps(std::int64_t n) { n_ = n; }
  Reverser(std::span<const double> params, std::int64_t n, const LoopStep& step,
           const LoopObjective& objective, LoopGradient& out)
      : params_(params.begin(), params.end()), n_(n), step_(step), objective_(objective), out_(out) {
    out_.grad_params.assign(params_.size(), 0.0);
  }

  // Reverses steps [a, b) from the state at a, with s snapshots (the one
  // holding `state` included); adj_ holds the adjoint of the state at b
  // and leaves with the adjoint of the state at a.
  void reverse(std::int64_t a, std::int64_t b, const std::vector<double>& state, std::int64_t s) {
    while (b - a > 1) {
      if (s <= 1) {  // no room to store: run forward from a each time
        for (std::int64_t i = b - 1; i >= a; --i) tape_step(i, advance(state, a, i));
        return;
      }
      const std::int64_t k = best_split(b - a, s);
      const std::vector<double> mid = advance(state, a, a + k);
      ++held_;
      out_.max_snapshots = std::max(out_.max_snapshots, held_);
      reverse(a + k, b, mid, s - 1);
      --held_;
      b = a + k;  // then the first k steps, with every snapshot again
    }
    tape_step(a, state);
  }

  std::size_t held_ = 1;  // the initial state

 private:
  // The state after running steps [from, to) from `state`, without keeping
  // their tapes.
 public:
  std::vector<double> advance(const std::vector<double>& state, std::int64_t from,
                              std::int64_t to) {
    std::vector<double> x = state;
    for (std::int64_t i = from; i < to; ++i) {
      TapeScope scope(tape_);
      tape_.clear();
      std::vector<Scalar> st, pv;
      for (double v : x) st.push_back(tape_.constant(v));
      for (double v : params_) pv.push_back(tape_.constant(v));
      step_(st, pv, i);
      for (std::size_t j = 0; j < x.size(); ++j) x[j] = st[j].value();
      ++out_.advances;
    }
    return x;
  }

 private:
  // Records step i from `state` and sweeps it: from the objective for the
  // last step, else from adj_ (the adjoint of the step's output).
  void tape_step(std::int64_t i, const std::vector<double>& state) {
    TapeScope scope(tape_);
    tape_.clear();
    std::vector<Scalar> in, st, pv;
    for (double v : state) in.push_back(tape_.variable(v));
    for (double v : params_) pv.push_back(tape_.variable(v));
    st = in;
    step_(st, pv, i);
    if (st.size() != in.size())
      throw Error(fmt::format("checkpointed loop: step {} changed the state's size from {} to {}", i,
                              in.size(), st.size()));
    Scalar seed;
    if (i == n_ - 1) {
      seed = objective_(st, pv);
      out_.value = seed.value();
    } else {
      // sum_j adj_j st_j: its gradient sends adj_ into the step
      seed = tape_.constant(0.0);
      for (std::size_t j = 0; j < st.size(); ++j)
        if (adj_[j] != 0.0) seed = seed + st[j] * adj_[j];
    }
    tape_.backward(seed);
    adj_.resize(in.size());
    for (std::size_t j = 0; j < in.size(); ++j) adj_[j] = in[j].grad();
    for (std::size_t j = 0; j < pv.size(); ++j) out_.grad_params[j] += pv[j].grad();
    ++out_.taped;
  }

 public:
  std::vector<double> adj_;

 private:
  std::vector<double> params_;
  std::int64_t n_;
  const LoopStep& step_;
  const LoopObjective& objective_;
  LoopGradient& out_;
  Tape tape_;

 public:
  std::size_t peak() const { return tape_.memory().peak_bytes; }
};

void check_args(std::int64_t n, const LoopStep& step, const LoopObjective& objective) {
  if (n < 1) throw Error(fmt::format("checkpointed loop: n is {}; it needs at least one step", n));
  if (!step || !objective) throw Error("checkpointed loop: give both a step and an objective");
}

}  // namespace

std::uint64_t checkpoint_advances(std::int64_t n, int snapshots) {
  return least(n, std::max(1, snapshots));
}

LoopGradient checkpointed_gradient(std::span<const double> state0, std::span<const double> params,
                                   std::int64_t n, int snapshots, const LoopStep& step,
                                   const LoopObjective& objective) {
  check_args(n, step, objective);
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  LoopGradient out;
  out.max_snapshots = 1;
  Reverser r(params, n, step, objective, out);
  r.reverse(0, n, std::vector<double>(state0.begin(), state0.end()),
            std::min<std::int64_t>(snapshots, n));
  out.grad_state = r.adj_;
  out.peak_tape_bytes = r.peak();
  return out;
}

LoopGradient checkpointed_gradient_online(std::span<const double> state0,
                                          std::span<const double> params, int snapshots,
                                          const LoopStep& step, const LoopDone& done,
                                          const LoopObjective& objective, std::int64_t max_steps) {
  if (!step || !objective || !done)
    throw Error("checkpointed loop: give a step, a done() test and an objective");
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  LoopGradient out;
  out.max_snapshots = 1;
  Reverser r(params, max_steps, step, objective, out);
  // The first run: snapshots at multiples of `spacing`, thinned to every
  // other one when all are taken.
  struct Snap {
    std::int64_t at;
    std::vector<double> state;
  };
  std::vector<Snap> snaps{{0, std::vector<double>(state0.begin(), state0.end())}};
  std::int64_t spacing = 1, n = 0;
  std::vector<double> x = snaps[0].state;
  for (;;) {
    x = r.advance(x, n, n + 1);
    ++n;
    if (done(x, n)) break;
    if (n >= max_steps)
      throw Error(fmt::format(
          "checkpointed loop: done() did not hold after {} steps (max_steps); the loop may not end",
          max_steps));
    if (n % spacing != 0) continue;
    if (static_cast<int>(snaps.size()) == snapshots) {
      std::vector<Snap> kept;
      for (Snap& s : snaps)
        if (s.at % (2 * spacing) == 0) kept.push_back(std::move(s));
      snaps = std::move(kept);
      spacing *= 2;
      if (n % spacing != 0) continue;
    }
    snaps.push_back({n, x});
    out.max_snapshots = std::max(out.max_snapshots, snaps.size());
  }
  // The reversal: segments last first, each with the snapshots the
  // segments before it leave free (its own start included).
  r.set_steps(n);
  std::int64_t end = n;
  for (std::size_t k = snaps.size(); k-- > 0;) {
    r.held_ = k + 1;
    const std::int64_t free = std::max<std::int64_t>(1, snapshots - static_cast<std::int64_t>(k));
    r.reverse(snaps[k].at, end, snaps[k].state, std::min<std::int64_t>(free, end - snaps[k].at));
    end = snaps[k].at;
    snaps.pop_back();
  }
  out.grad_state = r.adj_;
  out.peak_tape_bytes = r.peak();
  return out;
}

LoopGradient taped_gradient(std::span<const double> state0, std::span<const double> params,
                            std::int64_t n, const LoopStep& step, const LoopObjective& objective) {
  check_args(n, step, objective);
  Tape tape;
  TapeScope scope(tape);
  std::vector<Scalar> in, st, pv;
  for (double v : state0) in.push_back(tape.variable(v));
  for (double v : params) pv.push_back(tape.variable(v));
  st = in;
  for (std::int64_t i = 0; i < n; ++i) step(st, pv, i);
  const Scalar f = objective(st, pv);
  tape.backward(f);
  LoopGradient out;
  out.value = f.value();
  for (const Scalar& s : in) out.grad_state.push_back(s.grad());
  for (const Scalar& s : pv) out.grad_params.push_back(s.grad());
  out.taped = static_cast<std::uint64_t>(n);
  out.max_snapshots = 1;
  out.peak_tape_bytes = tape.memory().peak_bytes;
  return out;
}

}  // namespace tapegrad
