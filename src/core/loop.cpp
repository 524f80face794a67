// Binomial checkpointing of a loop (loop.hpp).
#include "tapegrad/loop.hpp"

#include "core/revolve.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/vector_function.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>

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

}  // namespace

// A k in [1, l) with split_cost(l, s, k) == least(l, s). The cost is
// convex in k, so a ternary search finds its minimum in O(log l).
std::int64_t detail::best_split(std::int64_t l, std::int64_t s) {
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

namespace {

class Reverser {
 public:
  void set_steps(std::int64_t n) { n_ = n; }
  Reverser(std::span<const double> params, std::int64_t n, const LoopStep& step,
           const LoopObjective& objective, LoopGradient& out)
      : params_(params.begin(), params.end()),
        n_(n),
        step_(step),
        objective_(objective),
        out_(out) {
    out_.grad_params.assign(params_.size(), 0.0);
  }
  // Second order along v: states then carry their tangents after their
  // values ([x, x_dot], twice the size), and tape_step also moves h_, the
  // adjoint's tangent.
  // Replay: the step recorded once as F(x, p) -> x', and the last step with
  // the objective as G(x, p) -> objective(F(x, p), p).
  void set_replay(std::span<const double> state0) {
    const std::size_t m = state0.size(), np = params_.size();
    std::vector<double> xp(state0.begin(), state0.end());
    xp.insert(xp.end(), params_.begin(), params_.end());
    const auto split = [&](std::span<const Scalar> v, std::vector<Scalar>& st,
                           std::vector<Scalar>& pv) {
      st.assign(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m));
      pv.assign(v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
    };
    step_f_ = std::make_unique<VectorFunction>(VectorFunction::record(xp, [&](auto v) {
      std::vector<Scalar> st, pv;
      split(v, st, pv);
      step_(st, pv, 0);
      if (st.size() != m)
        throw Error(fmt::format("checkpointed loop: step 0 changed the state's size from {} to {}",
                                m, st.size()));
      return st;
    }));
    last_f_ = std::make_unique<VectorFunction>(VectorFunction::record(xp, [&](auto v) {
      std::vector<Scalar> st, pv;
      split(v, st, pv);
      step_(st, pv, 0);
      return std::vector<Scalar>{objective_(st, pv)};
    }));
    xp_.resize(m + np);
    g_.resize(m + np);
  }
  void set_direction(std::span<const double> v_params, LoopHvp* hvp) {
    v_params_.assign(v_params.begin(), v_params.end());
    hvp_ = hvp;
    hvp_->hv_params.assign(params_.size(), 0.0);
  }

  // Reverses steps [a, b) from the state at a, with s snapshots (the one
  // holding `state` included); adj_ holds the adjoint of the state at b
  // and leaves with the adjoint of the state at a.
  void reverse(std::int64_t a, std::int64_t b, const std::vector<double>& state, std::int64_t s) {
    auto adv = [this](const std::vector<double>& x, std::int64_t from, std::int64_t to) {
      return advance(x, from, to);
    };
    auto sweep = [this](std::int64_t i, const std::vector<double>& x) { tape_step(i, x); };
    detail::reverse_steps(a, b, state, s, held_, out_.max_snapshots, adv, sweep);
  }

  std::size_t held_ = 1;  // the initial state

 private:
  // The state after running steps [from, to) from `state`, without keeping
  // their tapes.
 public:
  std::vector<double> advance(const std::vector<double>& state, std::int64_t from,
                              std::int64_t to) {
    std::vector<double> x = state;
    if (step_f_) {  // the compiled step: no tape at all
      std::copy(params_.begin(), params_.end(),
                xp_.begin() + static_cast<std::ptrdiff_t>(x.size()));
      for (std::int64_t i = from; i < to; ++i) {
        std::copy(x.begin(), x.end(), xp_.begin());
        step_f_->values(xp_, x);
        ++out_.advances;
      }
      return x;
    }
    for (std::int64_t i = from; i < to; ++i) {
      TapeScope scope(tape_);
      tape_.clear();
      if (hvp_) {  // the state's tangent too: one tangent sweep of the step
        const std::size_t m = x.size() / 2;
        std::vector<Scalar> in, pv;
        std::vector<Ref> refs;
        for (std::size_t j = 0; j < m; ++j) in.push_back(tape_.variable(x[j]));
        for (double v : params_) pv.push_back(tape_.variable(v));
        std::vector<Scalar> st = in;
        step_(st, pv, i);
        for (const Scalar& a : in) refs.push_back(a);
        for (const Scalar& a : pv) refs.push_back(a);
        std::vector<double> dir(x.begin() + static_cast<std::ptrdiff_t>(m), x.end());
        dir.insert(dir.end(), v_params_.begin(), v_params_.end());
        const std::vector<double> t = jvp(std::vector<Ref>(st.begin(), st.end()), refs, dir);
        for (std::size_t j = 0; j < m; ++j) x[j] = st[j].value(), x[m + j] = t[j];
      } else {
        std::vector<Scalar> st, pv;
        for (double v : x) st.push_back(tape_.constant(v));
        for (double v : params_) pv.push_back(tape_.constant(v));
        step_(st, pv, i);
        for (std::size_t j = 0; j < x.size(); ++j) x[j] = st[j].value();
      }
      ++out_.advances;
    }
    return x;
  }

 private:
  // Records step i on the cleared tape from the state's values (in: its
  // variables, st: the step's outputs, pv: the parameters) and returns the
  // seed to sweep from: the objective for the last step (its value kept),
  // else sum_j adj_j st_j, whose gradient sends adj_ into the step.
  Scalar record_step(std::int64_t i, std::span<const double> state, std::vector<Scalar>& in,
                     std::vector<Scalar>& st, std::vector<Scalar>& pv) {
    tape_.clear();
    for (double v : state) in.push_back(tape_.variable(v));
    for (double v : params_) pv.push_back(tape_.variable(v));
    st = in;
    step_(st, pv, i);
    if (st.size() != in.size())
      throw Error(fmt::format("checkpointed loop: step {} changed the state's size from {} to {}",
                              i, in.size(), st.size()));
    if (i == n_ - 1) {
      const Scalar f = objective_(st, pv);
      out_.value = f.value();
      return f;
    }
    Scalar seed = tape_.constant(0.0);
    for (std::size_t j = 0; j < st.size(); ++j)
      if (adj_[j] != 0.0) seed = seed + st[j] * adj_[j];
    return seed;
  }

  // Records step i from `state` and sweeps it: from the objective for the
  // last step, else from adj_ (the adjoint of the step's output).
  void tape_step(std::int64_t i, const std::vector<double>& state) {
    if (hvp_) return tape_step_second(i, state);
    if (step_f_) return replay_step(i, state);
    TapeScope scope(tape_);
    std::vector<Scalar> in, st, pv;
    const Scalar seed = record_step(i, std::span(state), in, st, pv);
    tape_.backward(seed);
    adj_.resize(in.size());
    for (std::size_t j = 0; j < in.size(); ++j) adj_[j] = in[j].grad();
    for (std::size_t j = 0; j < pv.size(); ++j) out_.grad_params[j] += pv[j].grad();
    ++out_.taped;
  }

  // Step i by the compiled recordings: u^T J of the step (u = adj_), or the
  // gradient of the objective through the last step.
  void replay_step(std::int64_t i, const std::vector<double>& state) {
    const std::size_t m = state.size();
    std::copy(state.begin(), state.end(), xp_.begin());
    std::copy(params_.begin(), params_.end(), xp_.begin() + static_cast<std::ptrdiff_t>(m));
    if (i == n_ - 1) {
      const double one = 1.0;
      double value = 0;
      last_f_->vjp(xp_, std::span<const double>(&one, 1), g_, std::span<double>(&value, 1));
      out_.value = value;
    } else {
      step_f_->vjp(xp_, adj_, g_);
    }
    adj_.assign(g_.begin(), g_.begin() + static_cast<std::ptrdiff_t>(m));
    for (std::size_t j = 0; j < params_.size(); ++j) out_.grad_params[j] += g_[m + j];
    ++out_.taped;
  }

  // Step i with [x, x_dot]: with g = adj_ . F(x, p) (or the objective for
  // the last step), the new adjoint is grad g and the new adjoint tangent
  // is H_g (x_dot, v_p) + J^T h_ (h_: the adjoint tangent of the output).
  void tape_step_second(std::int64_t i, const std::vector<double>& state) {
    TapeScope scope(tape_);
    const std::size_t m = state.size() / 2;
    std::vector<Scalar> in, st, pv;
    const Scalar g = record_step(i, std::span(state).first(m), in, st, pv);
    std::vector<Ref> refs(in.begin(), in.end());
    refs.insert(refs.end(), pv.begin(), pv.end());
    std::vector<double> dir(state.begin() + static_cast<std::ptrdiff_t>(m), state.end());
    dir.insert(dir.end(), v_params_.begin(), v_params_.end());
    const std::vector<double> hg = hvp(g, refs, dir);  // leaves grad g on the tape
    std::vector<double> grad(refs.size());
    for (std::size_t j = 0; j < m; ++j) grad[j] = in[j].grad();
    for (std::size_t j = 0; j < pv.size(); ++j) grad[m + j] = pv[j].grad();
    std::vector<double> jth(refs.size(), 0.0);
    if (i != n_ - 1) {
      std::vector<Ref> outs(st.begin(), st.end());
      jth = vjp(outs, refs, h_);
    }
    adj_.assign(grad.begin(), grad.begin() + static_cast<std::ptrdiff_t>(m));
    h_.resize(m);
    for (std::size_t j = 0; j < m; ++j) h_[j] = hg[j] + jth[j];
    for (std::size_t j = 0; j < pv.size(); ++j) {
      out_.grad_params[j] += grad[m + j];
      hvp_->hv_params[j] += hg[m + j] + jth[m + j];
    }
    ++out_.taped;
  }

 public:
  std::vector<double> adj_, h_;

 private:
  std::vector<double> params_;
  std::int64_t n_;
  const LoopStep& step_;
  const LoopObjective& objective_;
  LoopGradient& out_;
  std::vector<double> v_params_;
  LoopHvp* hvp_ = nullptr;
  std::unique_ptr<VectorFunction> step_f_, last_f_;
  std::vector<double> xp_, g_;
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
                                   const LoopObjective& objective, LoopOptions options) {
  check_args(n, step, objective);
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  LoopGradient out;
  out.max_snapshots = 1;
  Reverser r(params, n, step, objective, out);
  if (options.replay) r.set_replay(state0);
  r.reverse(0, n, std::vector<double>(state0.begin(), state0.end()),
            std::min<std::int64_t>(snapshots, n));
  out.grad_state = r.adj_;
  out.peak_tape_bytes = r.peak();
  return out;
}

LoopGradient checkpointed_gradient_online(std::span<const double> state0,
                                          std::span<const double> params, int snapshots,
                                          const LoopStep& step, const LoopDone& done,
                                          const LoopObjective& objective, std::int64_t max_steps,
                                          LoopOptions options) {
  if (!step || !objective || !done)
    throw Error("checkpointed loop: give a step, a done() test and an objective");
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  LoopGradient out;
  out.max_snapshots = 1;
  Reverser r(params, max_steps, step, objective, out);
  if (options.replay) r.set_replay(state0);
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

namespace {
void check_direction(std::span<const double> state0, std::span<const double> params,
                     std::span<const double> v_state, std::span<const double> v_params) {
  if (v_state.size() != state0.size() || v_params.size() != params.size())
    throw Error(fmt::format(
        "checkpointed loop: the direction has {} state and {} parameter entries; the loop has {} "
        "and {}",
        v_state.size(), v_params.size(), state0.size(), params.size()));
}
}  // namespace

LoopHvp checkpointed_hvp(std::span<const double> state0, std::span<const double> params,
                         std::int64_t n, int snapshots, const LoopStep& step,
                         const LoopObjective& objective, std::span<const double> v_state,
                         std::span<const double> v_params) {
  check_args(n, step, objective);
  check_direction(state0, params, v_state, v_params);
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  LoopHvp out;
  out.max_snapshots = 1;
  Reverser r(params, n, step, objective, out);
  r.set_direction(v_params, &out);
  std::vector<double> x(state0.begin(), state0.end());
  x.insert(x.end(), v_state.begin(), v_state.end());
  r.reverse(0, n, x, std::min<std::int64_t>(snapshots, n));
  out.grad_state = r.adj_;
  out.hv_state = r.h_;
  out.peak_tape_bytes = r.peak();
  return out;
}

LoopHvp taped_hvp(std::span<const double> state0, std::span<const double> params, std::int64_t n,
                  const LoopStep& step, const LoopObjective& objective,
                  std::span<const double> v_state, std::span<const double> v_params) {
  check_args(n, step, objective);
  check_direction(state0, params, v_state, v_params);
  Tape tape;
  TapeScope scope(tape);
  std::vector<Scalar> in, pv;
  for (double v : state0) in.push_back(tape.variable(v));
  for (double v : params) pv.push_back(tape.variable(v));
  std::vector<Scalar> st = in;
  for (std::int64_t i = 0; i < n; ++i) step(st, pv, i);
  const Scalar f = objective(st, pv);
  std::vector<Ref> refs(in.begin(), in.end());
  refs.insert(refs.end(), pv.begin(), pv.end());
  std::vector<double> dir(v_state.begin(), v_state.end());
  dir.insert(dir.end(), v_params.begin(), v_params.end());
  const std::vector<double> hv = hvp(f, refs, dir);
  LoopHvp out;
  out.value = f.value();
  for (const Scalar& s : in) out.grad_state.push_back(s.grad());
  for (const Scalar& s : pv) out.grad_params.push_back(s.grad());
  out.hv_state.assign(hv.begin(), hv.begin() + static_cast<std::ptrdiff_t>(in.size()));
  out.hv_params.assign(hv.begin() + static_cast<std::ptrdiff_t>(in.size()), hv.end());
  out.taped = static_cast<std::uint64_t>(n);
  out.max_snapshots = 1;
  out.peak_tape_bytes = tape.memory().peak_bytes;
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
