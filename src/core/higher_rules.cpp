// The columns of the higher-order sweeps (Tangents) and the generic
// higher-order rules the tensor ops share (higher_rules.hpp). The sweeps
// themselves live in higher.cpp.
#include <algorithm>
#include <cstring>

#include "core/higher_rules.hpp"

namespace tapegrad {

void no_curvature(Tape&, std::uint32_t, Tangents&) {}

// ---- Tangents ----

Tangents::Tangents(Tape& tape) : tape_(tape) {
  tt_.assign(tape.tensor_count(), nullptr);
  st_.assign(tape.scalar_count(), 0.0);
  std::size_t most = 8;
  for (std::uint32_t t = 0; t < tape.tensor_count(); ++t) {
    const TensorNode& n = tape.tensor_node(t);
    most = std::max(most, static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
  }
  zeros_ = tape.acquire(most);
  std::memset(zeros_.data(), 0, most);
}

Tangents::~Tangents() {
  for (Buffer& b : owned_) tape_.release(std::move(b));
  tape_.release(std::move(zeros_));
}

void* Tangents::make(std::uint32_t t) {
  const TensorNode& n = tape_.tensor_node(t);
  const std::size_t bytes =
      std::max<std::size_t>(8, static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
  owned_.push_back(tape_.acquire(bytes));
  return tt_[t] = owned_.back().data();
}

bool Tangents::any_input(std::uint32_t t) const {
  const TensorNode& n = tape_.tensor_node(t);
  for (int k = 0; k < n.n_in; ++k)
    if (n.in[k] != kNone && has(n.in[k])) return true;
  return n.scalar_in != kNone && st_[n.scalar_in] != 0.0;
}

}  // namespace tapegrad

namespace tapegrad::detail {

namespace {
// Points node values (or the node's gradient) elsewhere for one rule call and
// puts them back in reverse order, so an input that appears twice is
// restored correctly.
class Swaps {
 public:
  explicit Swaps(Tape& tape) : tape_(tape) {}
  ~Swaps() {
    for (int k = n_; k-- > 0;) *slot_[k] = old_[k];
  }
  void set(void*& slot, const void* to) {
    slot_[n_] = &slot, old_[n_] = slot, ++n_;
    slot = const_cast<void*>(to);
  }
  void value(std::uint32_t t, const void* to) { set(tape_.tensor_node(t).value, to); }

 private:
  Tape& tape_;
  void** slot_[8];
  void* old_[8];
  int n_ = 0;
};
}  // namespace

void linear_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  TensorNode& n = tape.tensor_node(t);
  void* out = tg.make(t);
  Swaps s(tape);
  for (int k = 0; k < n.n_in; ++k) s.value(n.in[k], tg.of<char>(n.in[k]));
  s.value(t, out);
  n.op->forward(tape, t);
}

void bilinear_curvature(Tape& tape, std::uint32_t t, Tangents& tg) {
  TensorNode& n = tape.tensor_node(t);
  const void* g1 = tg.first_grad<void>(t);
  if (!g1) return;
  const std::uint32_t a = n.in[0], b = n.in[1];
  const bool ha = tg.has(a), hb = tg.has(b);
  // Input a's term needs b's tangent and b's needs a's; a bias takes none.
  TensorNode &na = tape.tensor_node(a), &nb = tape.tensor_node(b);
  const bool ra = na.requires_grad, rb = nb.requires_grad;
  TensorNode* bias = n.n_in > 2 && n.in[2] != kNone ? &tape.tensor_node(n.in[2]) : nullptr;
  const bool rc = bias && bias->requires_grad;
  na.requires_grad = ra && hb;
  nb.requires_grad = rb && ha;
  if (bias) bias->requires_grad = false;
  const bool any = na.requires_grad || nb.requires_grad;
  {
    Swaps s(tape);
    s.value(a, tg.of<char>(a));
    s.value(b, tg.of<char>(b));
    s.set(n.grad, g1);
    if (any) n.op->backward(tape, t);
  }
  if (bias) bias->requires_grad = rc;
  nb.requires_grad = rb;
  na.requires_grad = ra;
}

}  // namespace tapegrad::detail
