// Checkpointed loops over tensor states (loop.hpp): the binomial reversal of
// src/core/revolve.hpp with snapshots of tensor values and one step's tape.
#include <fmt/format.h>

#include <algorithm>

#include "core/revolve.hpp"
#include "tapegrad/loop.hpp"
#include "tapegrad/ops.hpp"

namespace tapegrad {

namespace {

using State = std::vector<std::vector<double>>;  // per tensor, row-major

void check_values(const std::vector<TensorValue>& vs, const char* what) {
  for (std::size_t k = 0; k < vs.size(); ++k)
    if (static_cast<std::int64_t>(vs[k].values.size()) != vs[k].shape.numel())
      throw Error(fmt::format("checkpointed loop: {} {} has shape {} ({} elements) but {} values",
                              what, k, vs[k].shape.str(), vs[k].shape.numel(),
                              vs[k].values.size()));
}

class TensorLoop {
 public:
  TensorLoop(const std::vector<TensorValue>& state0, const std::vector<TensorValue>& params,
             std::int64_t n, const TensorLoopStep& step, const TensorLoopObjective& objective,
             TensorLoopGradient& out)
      : params_(params), n_(n), step_(step), objective_(objective), out_(out) {
    for (const TensorValue& v : state0) shapes_.push_back(v.shape);
    out_.grad_params.resize(params.size());
    for (std::size_t k = 0; k < params.size(); ++k)
      out_.grad_params[k].assign(params[k].values.size(), 0.0);
  }

  // The state at `to` from the state at `from`, without gradients.
  State advance(const State& x0, std::int64_t from, std::int64_t to) {
    State x = x0;
    for (std::int64_t i = from; i < to; ++i) {
      tape_.clear();
      TapeScope scope(tape_);
      NoGrad values_only(tape_);
      std::vector<Tensor> st = leaves(x, false), pv = param_leaves(false);
      run_step(st, pv, i);
      for (std::size_t k = 0; k < st.size(); ++k) x[k] = st[k].values();
      ++out_.advances;
    }
    return x;
  }

  // Records step i from `x` and sweeps it: from the objective for the last
  // step, else from sum_k <adj_k, state_k>, which sends adj_ into the step.
  void sweep(std::int64_t i, const State& x) {
    tape_.clear();
    TapeScope scope(tape_);
    const std::vector<Tensor> in = leaves(x, true), pv = param_leaves(true);
    std::vector<Tensor> st = in;
    run_step(st, pv, i);
    Tensor root;
    if (i == n_ - 1) {
      root = objective_(st, pv);
      if (!root.defined() || root.numel() != 1)
        throw Error(
            fmt::format("checkpointed loop: the objective must return a one-element tensor, "
                        "got shape {}",
                        root.defined() ? root.shape().str() : std::string("(none)")));
      out_.value = root.value(0);
    } else {
      root = tensor({0.0}, Shape{});
      for (std::size_t k = 0; k < st.size(); ++k)
        root = root + sum(st[k] * tensor(adj_[k], shapes_[k]));
    }
    tape_.backward(root);
    adj_.resize(in.size());
    for (std::size_t k = 0; k < in.size(); ++k) adj_[k] = in[k].grads();
    for (std::size_t k = 0; k < pv.size(); ++k) {
      const std::vector<double> g = pv[k].grads();
      for (std::size_t j = 0; j < g.size(); ++j) out_.grad_params[k][j] += g[j];
    }
    ++out_.taped;
  }

  // The most the step tape held (its peak survives the clears between steps).
  std::size_t peak() const { return tape_.memory().peak_bytes; }
  State adj_;

 private:
  std::vector<Tensor> leaves(const State& x, bool grad) {
    std::vector<Tensor> out;
    for (std::size_t k = 0; k < x.size(); ++k)
      out.push_back(tensor(x[k], shapes_[k], {.dtype = DType::f64, .requires_grad = grad}));
    return out;
  }
  std::vector<Tensor> param_leaves(bool grad) {
    std::vector<Tensor> out;
    for (const TensorValue& p : params_)
      out.push_back(tensor(p.values, p.shape, {.dtype = DType::f64, .requires_grad = grad}));
    return out;
  }
  void run_step(std::vector<Tensor>& st, const std::vector<Tensor>& pv, std::int64_t i) {
    step_(st, pv, i);
    if (st.size() != shapes_.size())
      throw Error(
          fmt::format("checkpointed loop: step {} changed the number of state tensors from "
                      "{} to {}",
                      i, shapes_.size(), st.size()));
    for (std::size_t k = 0; k < st.size(); ++k)
      if (!st[k].defined() || !(st[k].shape() == shapes_[k]) || st[k].dtype() != DType::f64)
        throw Error(
            fmt::format("checkpointed loop: step {} made state tensor {} {} {}; it must "
                        "stay float64 of shape {}",
                        i, k, st[k].defined() ? st[k].shape().str() : "(none)",
                        st[k].defined() ? dtype_name(st[k].dtype()) : "", shapes_[k].str()));
  }

  const std::vector<TensorValue>& params_;
  std::vector<Shape> shapes_;
  std::int64_t n_;
  const TensorLoopStep& step_;
  const TensorLoopObjective& objective_;
  TensorLoopGradient& out_;
  Tape tape_;
};

void check_loop(const std::vector<TensorValue>& state0, const std::vector<TensorValue>& params,
                std::int64_t n, const TensorLoopStep& step, const TensorLoopObjective& objective) {
  if (n < 1) throw Error(fmt::format("checkpointed loop: n is {}; it needs at least one step", n));
  if (!step || !objective) throw Error("checkpointed loop: give both a step and an objective");
  if (state0.empty()) throw Error("checkpointed loop: the state has no tensors");
  check_values(state0, "state tensor");
  check_values(params, "parameter");
}

}  // namespace

TensorLoopGradient checkpointed_gradient(const std::vector<TensorValue>& state0,
                                         const std::vector<TensorValue>& params, std::int64_t n,
                                         int snapshots, const TensorLoopStep& step,
                                         const TensorLoopObjective& objective) {
  check_loop(state0, params, n, step, objective);
  if (snapshots < 1)
    throw Error(fmt::format(
        "checkpointed loop: {} snapshots; at least 1 (the initial state) is needed", snapshots));
  TensorLoopGradient out;
  out.max_snapshots = 1;
  TensorLoop loop(state0, params, n, step, objective, out);
  State x0;
  for (const TensorValue& v : state0) x0.push_back(v.values);
  auto adv = [&](const State& x, std::int64_t from, std::int64_t to) {
    return loop.advance(x, from, to);
  };
  auto sweep = [&](std::int64_t i, const State& x) { loop.sweep(i, x); };
  std::size_t held = 1;
  detail::reverse_steps(std::int64_t{0}, n, x0, std::min<std::int64_t>(snapshots, n), held,
                        out.max_snapshots, adv, sweep);
  out.grad_state = std::move(loop.adj_);
  out.peak_tape_bytes = loop.peak();
  return out;
}

TensorLoopGradient taped_gradient(const std::vector<TensorValue>& state0,
                                  const std::vector<TensorValue>& params, std::int64_t n,
                                  const TensorLoopStep& step,
                                  const TensorLoopObjective& objective) {
  check_loop(state0, params, n, step, objective);
  Tape tape;
  TapeScope scope(tape);
  std::vector<Tensor> in, pv;
  for (const TensorValue& v : state0)
    in.push_back(tensor(v.values, v.shape, {.dtype = DType::f64, .requires_grad = true}));
  for (const TensorValue& p : params)
    pv.push_back(tensor(p.values, p.shape, {.dtype = DType::f64, .requires_grad = true}));
  std::vector<Tensor> st = in;
  for (std::int64_t i = 0; i < n; ++i) step(st, pv, i);
  const Tensor f = objective(st, pv);
  if (!f.defined() || f.numel() != 1)
    throw Error("checkpointed loop: the objective must return a one-element tensor");
  tape.backward(f);
  TensorLoopGradient out;
  out.value = f.value(0);
  for (const Tensor& t : in) out.grad_state.push_back(t.grads());
  for (const Tensor& t : pv) out.grad_params.push_back(t.grads());
  out.taped = static_cast<std::uint64_t>(n);
  out.max_snapshots = 1;
  out.peak_tape_bytes = tape.memory().peak_bytes;
  return out;
}

}  // namespace tapegrad
