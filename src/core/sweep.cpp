// The reverse sweep: one loop from the root down to the first node, scalar
// and tensor nodes interleaved by each tensor node's scalar mark, and the
// seeding of a root. (Recording and the tape's memory live in tape.cpp.)
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/kernels.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

namespace {
constexpr std::uint32_t kIndexMask = Tape::kIndexMask;

// The plain loop: each node adds its shares to its inputs' adjoints.
void sweep_plain(const ScalarEdges* e, double* g, std::uint32_t lo, std::uint32_t hi) {
  for (std::uint32_t i = hi; i-- > lo;) {
    const double gi = g[i];
    // Skipping zero adjoints keeps an infinite partial on an unused path from
    // turning into 0 * inf = NaN.
    if (gi != 0.0) {
      const ScalarEdges& n = e[i];
      g[n.a_op & kIndexMask] += n.da * gi;
      g[n.b] += n.db * gi;
    }
  }
}

// The same for a run of nodes that each take the node before as input a
// and share input b (a recurrence on one parameter: the add/mul chain,
// Horner's rule). There the plain loop waits, node after node, for a store
// to reach the next load, twice: node i - 1's adjoint, loaded at once, and
// b's, added to by every node. Here the share for node i - 1 rides in a
// register (`carry`), and b's shares add up in another (`pending`) until b
// changes. Every adjoint is in memory at the end. On other graphs its
// branches are mispredicted often enough to make it slower than the plain
// loop (docs/performance.md), hence the probe below.
void sweep_chain(const ScalarEdges* e, double* g, std::uint32_t lo, std::uint32_t hi) {
  double carry = 0.0;
  std::uint32_t pb = 0;
  double pending = 0.0;
  for (std::uint32_t i = hi; i-- > lo;) {
    if (i == pb) [[unlikely]] {
      g[pb] += pending;
      pending = 0.0;
      pb = 0;
    }
    const double gi = g[i] + carry;
    g[i] = gi;
    carry = 0.0;
    if (gi != 0.0) {
      const ScalarEdges& n = e[i];
      const std::uint32_t a = n.a_op & kIndexMask;
      if (a + 1 == i)
        carry = n.da * gi;
      else
        g[a] += n.da * gi;
      if (n.b == pb) {
        pending += n.db * gi;
      } else {
        g[pb] += pending;
        pb = n.b;
        pending = n.db * gi;
      }
    }
  }
  g[lo - 1] += carry;  // lo >= 1: node lo - 1 comes later, or is the sink
  g[pb] += pending;
}

constexpr std::uint32_t kBlock = 1024, kProbe = 32;

// Whether the top kProbe nodes below `hi` all chain as sweep_chain wants.
bool chains(const ScalarEdges* e, std::uint32_t hi) {
  std::uint32_t hits = 0;
  for (std::uint32_t i = hi - kProbe; i < hi - 1; ++i)
    hits += ((e[i].a_op & kIndexMask) + 1 == i) & (e[i].b == e[i + 1].b);
  return hits == kProbe - 1;
}
}  // namespace

// Blocks of kBlock nodes, each swept by the chain loop when a probe of its
// top nodes says it chains, else by the plain loop. The probe reads 3% of
// the block's nodes.
void Tape::sweep_scalars(std::uint32_t lo, std::uint32_t hi) {
  const ScalarEdges* e = scalars_.edges();
  double* g = adj_.data();
  while (hi - lo >= kBlock) {
    const std::uint32_t bottom = hi - kBlock;
    if (chains(e, hi))
      sweep_chain(e, g, bottom, hi);
    else
      sweep_plain(e, g, bottom, hi);
    hi = bottom;
  }
  sweep_plain(e, g, lo, hi);
}

void Tape::sweep(std::uint32_t s_hi, std::uint32_t t_hi) {
  const auto scalars = anomaly_ ? &Tape::sweep_scalars_checked : &Tape::sweep_scalars;
  std::uint32_t s = s_hi;
  for (std::uint32_t t = t_hi; t-- > 0;) {
    TensorNode& n = tnodes_[t];
    if (n.scalar_mark < s) {
      (this->*scalars)(n.scalar_mark, s);
      s = n.scalar_mark;
    }
    if (!n.op->backward) {
      if (leaf_hook_ && n.requires_grad) [[unlikely]]
        leaf_hook_(leaf_ctx_, t);
      continue;
    }
    if (!n.requires_grad) continue;
    if (n.scalar_out != kNone ? adj_[n.scalar_out] == 0.0 : n.grad == nullptr) continue;
    n.op->backward(*this, t);
    if (anomaly_) [[unlikely]]
      check_tensor_backward(t);
  }
  (this->*scalars)(1, s);
}

namespace {
bool is_interior(ScalarOp op) { return op != ScalarOp::leaf && op != ScalarOp::constant; }
}  // namespace

// Runs `seed` then the sweep over scalar nodes [1, s_hi) and tensor nodes
// [0, t_hi). When an earlier sweep already propagated through interior nodes
// of that range, their adjoints are set aside first and added back after, so
// the new sweep propagates only the new gradient.
template <class Seed>
static void guarded_sweep(Tape& tape, std::uint32_t s_hi, std::uint32_t t_hi, std::uint32_t swept_s,
                          std::uint32_t swept_t, Seed&& seed,
                          void (Tape::*sweep)(std::uint32_t, std::uint32_t)) {
  std::vector<std::pair<std::uint32_t, double>> saved_s;
  std::vector<std::pair<std::uint32_t, Buffer>> saved_t;
  double* g = tape.scalar_adjoints();
  for (std::uint32_t i = 1, e = std::min(s_hi, swept_s); i < e; ++i)
    if (g[i] != 0.0 && is_interior(tape.scalar_op(i))) saved_s.emplace_back(i, g[i]), g[i] = 0.0;
  for (std::uint32_t t = 0, e = std::min(t_hi, swept_t); t < e; ++t) {
    TensorNode& n = tape.tensor_node(t);
    if (n.op->backward && n.grad && n.grad_buf) {
      saved_t.emplace_back(t, std::move(n.grad_buf));
      n.grad = nullptr;
    }
  }
  seed();
  (tape.*sweep)(s_hi, t_hi);
  g = tape.scalar_adjoints();
  for (auto& [i, v] : saved_s) g[i] += v;
  for (auto& [t, buf] : saved_t) {
    TensorNode& n = tape.tensor_node(t);
    if (!n.grad) {
      n.grad_buf = std::move(buf);
      n.grad = n.grad_buf.data();
    } else {
      detail::add_into(n.dtype, n.grad, buf.data(), n.shape.numel());
      tape.release(std::move(buf));
    }
  }
}

void Tape::backward(const Scalar& root) {
  root.checked("backward");
  check_owner("backward");
  if (&root.tape() != this) throw Error("backward: the root lives on another tape");
  const std::uint32_t r = root.index();
  const std::uint32_t s_hi = r + 1;
  // Tensor nodes created before scalar r have scalar_mark <= r.
  const auto it =
      std::upper_bound(tnodes_.begin(), tnodes_.end(), r,
                       [](std::uint32_t v, const TensorNode& n) { return v < n.scalar_mark; });
  const auto t_hi = static_cast<std::uint32_t>(it - tnodes_.begin());
  scalar_adjoints();
  guarded_sweep(
      *this, s_hi, t_hi, swept_s_, swept_t_, [&] { adj_[r] += 1.0; }, &Tape::sweep);
  swept_s_ = std::max(swept_s_, s_hi);
  swept_t_ = std::max(swept_t_, t_hi);
}

void Tape::backward(const Tensor& root) {
  root.checked("backward");
  check_owner("backward");
  if (root.numel() != 1)
    throw Error(
        fmt::format("backward: the root has shape {} ({} elements); backward() without "
                    "a seed needs a one-element tensor (a loss), or pass a seed of "
                    "shape {}",
                    root.shape().str(), root.numel(), root.shape().str()));
  const std::uint32_t t = root.index();
  TensorNode& n = tnodes_[t];
  scalar_adjoints();
  guarded_sweep(
      *this, n.scalar_mark, t + 1, swept_s_, swept_t_,
      [&] {
        void* gp = grad_buffer(t);
        dispatch_dtype(n.dtype, [&](auto z) { static_cast<decltype(z)*>(gp)[0] += 1; });
      },
      &Tape::sweep);
  swept_s_ = std::max(swept_s_, tnodes_[t].scalar_mark);
  swept_t_ = std::max(swept_t_, t + 1);
}

void Tape::backward(const Tensor& root, const Tensor& seed) {
  root.checked("backward");
  check_owner("backward");
  seed.checked("backward seed");
  if (!(root.shape() == seed.shape()))
    throw Error(fmt::format("backward: seed of shape {} does not match the root's shape {}",
                            seed.shape().str(), root.shape().str()));
  const std::uint32_t t = root.index();
  const std::vector<double> sv = seed.values();
  scalar_adjoints();
  guarded_sweep(
      *this, tnodes_[t].scalar_mark, t + 1, swept_s_, swept_t_,
      [&] {
        void* gp = grad_buffer(t);
        dispatch_dtype(tnodes_[t].dtype, [&](auto z) {
          using T = decltype(z);
          for (std::size_t i = 0; i < sv.size(); ++i)
            static_cast<T*>(gp)[i] += static_cast<T>(sv[i]);
        });
      },
      &Tape::sweep);
  swept_s_ = std::max(swept_s_, tnodes_[t].scalar_mark);
  swept_t_ = std::max(swept_t_, t + 1);
}

}  // namespace tapegrad
