// Checkpointed blocks: f(x) as one node that keeps its input and output
// only, recomputed with gradients during the backward sweep (ops.hpp).
#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <vector>

#include "tapegrad/ops.hpp"

namespace tapegrad {

namespace {

struct CheckpointAttrs {
  const BlockFn* fn;
};

// Scratch tapes, per thread: a block recomputed inside another block's
// recomputation takes the next one. Each is cleared after use and keeps its
// memory for the next block.
struct ScratchTapes {
  std::vector<std::unique_ptr<Tape>> tapes;
  std::size_t depth = 0;
  std::size_t peak = 0;
};
ScratchTapes& scratch_tapes() {
  thread_local ScratchTapes s;
  return s;
}
class Scratch {
 public:
  explicit Scratch(const Tape& parent) : s_(scratch_tapes()) {
    if (s_.depth == s_.tapes.size()) s_.tapes.push_back(std::make_unique<Tape>());
    tape_ = s_.tapes[s_.depth++].get();
    tape_->set_anomaly_enabled(parent.anomaly_enabled());
  }
  ~Scratch() {
    s_.peak = std::max(s_.peak, tape_->memory().peak_bytes);
    tape_->clear();
    tape_->set_grad_enabled(true);
    --s_.depth;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Tape& tape() { return *tape_; }

 private:
  ScratchTapes& s_;
  Tape* tape_;
};

// f on the scratch tape with x's values (in place: no copy), checked
// against what the node expects.
Tensor run_block(Tape& scratch, const TensorNode& node, const TensorNode& xn, void* xgrad) {
  const BlockFn& f = *node.attrs.get<CheckpointAttrs>().fn;
  Tensor x = external(xn.shape, xn.dtype, xn.value, xgrad, "checkpoint input", node.site);
  Tensor y = f(x);
  if (!y.defined() || &y.tape() != &scratch)
    throw Error(fmt::format(
        "checkpoint{}: the block must return a tensor it computed from its input (on the current "
        "tape), not one made elsewhere",
        node.site.line() ? " at " + site_str(node.site) : std::string()));
  if (!(y.shape() == node.shape) || y.dtype() != node.dtype)
    throw Error(fmt::format(
        "checkpoint: the block returned {} {} when recomputed, {} {} when recorded; "
        "a checkpointed block must be a pure function of its input",
        y.shape().str(), dtype_name(y.dtype()), node.shape.str(), dtype_name(node.dtype)));
  return y;
}

void checkpoint_forward(Tape& tape, std::uint32_t t) {
  Scratch s(tape);
  TapeScope scope(s.tape());
  NoGrad values_only(s.tape());
  const TensorNode& n = tape.tensor_node(t);
  const Tensor y = run_block(s.tape(), n, tape.tensor_node(n.in[0]), nullptr);
  std::memcpy(tape.tensor_node(t).value, y.node().value,
              static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
}

void checkpoint_backward(Tape& tape, std::uint32_t t) {
  const std::uint32_t in = tape.tensor_node(t).in[0];
  void* xgrad = tape.tensor_node(in).requires_grad ? tape.grad_buffer(in) : nullptr;
  const TensorNode& n = tape.tensor_node(t);
  Scratch s(tape);
  TapeScope scope(s.tape());
  const Tensor y = run_block(s.tape(), n, tape.tensor_node(in), xgrad);
  const Tensor seed = external(n.shape, n.dtype, const_cast<void*>(n.grad_or_null()), nullptr,
                               "checkpoint output gradient", n.site);
  s.tape().backward(y, seed);
}

const TensorOpDef kCheckpoint{.name = "checkpoint",
                              .forward = &checkpoint_forward,
                              .backward = &checkpoint_backward,
                              .gate = Gate::scales,
                              .note = "(recomputed: the block runs again to send its gradient)"};

}  // namespace

Tensor checkpoint(BlockFn f, const Tensor& x, Site where) {
  Tape& tape = x.checked("checkpoint");
  if (!f) throw Error("checkpoint: no block function given");
  // The output's shape and dtype come from one run, values only; that run's
  // values become the node's (no second forward).
  auto fn = std::make_shared<const BlockFn>(std::move(f));
  Shape shape;
  DType dtype;
  std::vector<unsigned char> value;
  {
    Scratch s(tape);
    TapeScope scope(s.tape());
    NoGrad values_only(s.tape());
    const TensorNode& xn = tape.tensor_node(x.index());
    Tensor xin = external(xn.shape, xn.dtype, xn.value, nullptr, "checkpoint input", where);
    Tensor y = (*fn)(xin);
    if (!y.defined() || &y.tape() != &s.tape())
      throw Error(fmt::format(
          "checkpoint at {}: the block must return a tensor it computed from its input (on the "
          "current tape), not one made elsewhere",
          site_str(where)));
    shape = y.shape();
    dtype = y.dtype();
    const auto* p = static_cast<const unsigned char*>(y.node().value);
    value.assign(p, p + static_cast<std::size_t>(shape.numel()) * dtype_size(dtype));
  }
  const std::uint32_t t = tape.push_tensor(&kCheckpoint, shape, dtype, {x.index()}, where);
  TensorNode& n = tape.tensor_node(t);
  // The block may read parameters even when x takes no gradient (the data
  // into a first layer): the node takes gradients whenever the tape records
  // them.
  n.requires_grad = tape.grad_enabled();
  n.attrs.set(CheckpointAttrs{fn.get()});
  std::memcpy(n.value, value.data(), value.size());
  tape.own(t, std::move(fn));
  return {tape, t};
}

std::size_t checkpoint_scratch_peak() { return scratch_tapes().peak; }

}  // namespace tapegrad
