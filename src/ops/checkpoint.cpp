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
    tape_->clear();  // its peak stays on record (checkpoint_scratch_peak)
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

// f on the scratch tape with x's values (in place: no copy; gradients into
// xgrad when it is not null), checked to be a tensor f computed there.
Tensor run_fn(Tape& scratch, const BlockFn& f, const TensorNode& xn, void* xgrad, Site site) {
  Tensor y = f(external(xn.shape, xn.dtype, xn.value, xgrad, "checkpoint input", site));
  if (!y.defined() || &y.tape() != &scratch)
    throw Error(fmt::format(
        "checkpoint{}: the block must return a tensor it computed from its input (on the current "
        "tape), not one made elsewhere",
        site.line() ? " at " + site_str(site) : std::string()));
  return y;
}

// The recorded node's f run again, checked against what the node holds.
Tensor run_block(Tape& scratch, const TensorNode& node, const TensorNode& xn, void* xgrad) {
  Tensor y = run_fn(scratch, *node.attrs.get<CheckpointAttrs>().fn, xn, xgrad, node.site);
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
  // One run, values only, gives the node its shape, dtype and values.
  auto fn = std::make_shared<const BlockFn>(std::move(f));
  Scratch s(tape);
  TapeScope scope(s.tape());
  NoGrad values_only(s.tape());
  const Tensor y = run_fn(s.tape(), *fn, tape.tensor_node(x.index()), nullptr, where);
  const std::uint32_t t = tape.push_tensor(&kCheckpoint, y.shape(), y.dtype(), {x.index()}, where);
  TensorNode& n = tape.tensor_node(t);
  // The block may read parameters even when x takes no gradient (the data
  // into a first layer): the node takes gradients whenever the tape records
  // them.
  n.requires_grad = tape.grad_enabled();
  n.attrs.set(CheckpointAttrs{fn.get()});
  std::memcpy(n.value, y.node().value,
              static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
  tape.own(t, std::move(fn));
  return {tape, t};
}

std::size_t checkpoint_scratch_peak() {
  std::size_t peak = 0;
  for (const auto& t : scratch_tapes().tapes) peak = std::max(peak, t->memory().peak_bytes);
  return peak;
}

}  // namespace tapegrad
