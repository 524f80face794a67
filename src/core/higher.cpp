// Higher-order sweeps over a recorded tape: the tangent sweep (forward mode)
// and the second-order reverse sweep (forward-over-reverse), and the API of
// higher.hpp on top of them. The first-order sweep (sweep.cpp) is not
// touched: its columns are set aside while the second-order sweep runs in
// their place, and every op's own backward rule propagates the adjoint
// tangent h; only the curvature term is new per op.
#include "tapegrad/higher.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/higher_rules.hpp"
#include "core/rules.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {

namespace detail {
std::uint32_t tensors_before(const Tape& tape, std::uint32_t r);  // replay.cpp
}

namespace detail {

// The scalar and tensor node ranges an output depends on.
struct Range {
  std::uint32_t s_hi = 1, t_hi = 0;
  void cover(const Tape& tape, const Ref& r) {
    if (r.is_tensor()) {
      s_hi = std::max(s_hi, tape.tensor_node(r.index()).scalar_mark);
      t_hi = std::max(t_hi, r.index() + 1);
    } else {
      s_hi = std::max(s_hi, r.index() + 1);
      t_hi = std::max(t_hi, tensors_before(tape, r.index()));
    }
  }
};

struct HigherOrder {
  static std::string where(const Tape& tape, NodeKind kind, std::uint32_t i) {
    const std::string o = tape.origin(kind, i);
    return o.empty() ? "" : "; " + o;
  }

  // t[i] = da t[a] + db t[b] over scalar nodes [lo, hi). A zero tangent
  // contributes nothing even through an infinite partial (sqrt at 0).
  static void tangent_scalars(Tape& tape, Tangents& tg, std::uint32_t lo, std::uint32_t hi) {
    const ScalarEdges* e = tape.scalars_.edges();
    double* st = tg.st_.data();
    for (std::uint32_t i = lo; i < hi; ++i) {
      const ScalarEdges& n = e[i];
      const auto op = static_cast<ScalarOp>(n.a_op >> Tape::kIndexBits);
      switch (op) {
        case ScalarOp::sink:
        case ScalarOp::leaf:
        case ScalarOp::constant:
        case ScalarOp::item:  // set by its item node's JVP
        case ScalarOp::compare:
          continue;
        default: {
          const double ta = st[n.a_op & Tape::kIndexMask], tb = st[n.b];
          double t = 0;
          if (ta != 0.0) t += n.da * ta;
          if (tb != 0.0) t += n.db * tb;
          st[i] = t;
        }
      }
    }
  }

  // The tangent sweep over scalar nodes [1, s_hi) and tensor nodes [0, t_hi).
  static void tangent_sweep(Tape& tape, Tangents& tg, Range r) {
    std::uint32_t s = 1;
    for (std::uint32_t t = 0; t < r.t_hi; ++t) {
      const TensorNode& n = tape.tnodes_[t];
      if (n.scalar_mark > s) {
        const std::uint32_t e = std::min(n.scalar_mark, r.s_hi);
        tangent_scalars(tape, tg, s, e);
        s = std::max(s, e);
      }
      if (!n.op->forward || !tg.any_input(t)) continue;  // a leaf, or no tangent reaches it
      if (!n.op->jvp)
        throw Error(fmt::format(
            "higher-order sweep: op '{}' (tensor node t{}) has no JVP rule, so forward mode and "
            "second derivatives cannot pass through it{}",
            n.op->name, t, where(tape, NodeKind::tensor, t)));
      n.op->jvp(tape, t, tg);
    }
    if (s < r.s_hi) tangent_scalars(tape, tg, s, r.s_hi);
  }

  // The first-order reverse sweep with seeds: zero_grad, then u_k into each
  // output's adjoint, then the usual sweep over the outputs' range.
  static Range seeded_sweep(Tape& tape, const std::vector<Ref>& outs, std::span<const double> u) {
    tape.zero_grad();
    tape.scalar_adjoints();
    Range r;
    std::size_t off = 0;
    for (const Ref& o : outs) {
      r.cover(tape, o);
      if (!o.is_tensor()) {
        tape.adj_[o.index()] += u[off++];
        continue;
      }
      const std::uint32_t t = o.index();
      void* g = tape.grad_buffer(t);
      dispatch_dtype(tape.tnodes_[t].dtype, [&](auto z) {
        using T = decltype(z);
        for (std::int64_t i = 0, n = o.size(); i < n; ++i)
          static_cast<T*>(g)[i] += static_cast<T>(u[off + static_cast<std::size_t>(i)]);
      });
      off += static_cast<std::size_t>(o.size());
    }
    tape.sweep(r.s_hi, r.t_hi);
    tape.swept_s_ = r.s_hi, tape.swept_t_ = r.t_hi;
    return r;
  }

  // Moves the first-order adjoints into tg (g) and leaves the tape's columns
  // empty for the adjoint tangents (h).
  static void set_aside(Tape& tape, Tangents& tg) {
    tape.scalar_adjoints();
    tg.sg1_.assign(tape.adj_.begin(), tape.adj_.end());
    std::fill(tape.adj_.begin(), tape.adj_.end(), 0.0);
    tg.g1_.assign(tape.tnodes_.size(), nullptr);
    tg.aside_.resize(tape.tnodes_.size());
    for (std::uint32_t t = 0; t < tape.tnodes_.size(); ++t) {
      TensorNode& n = tape.tnodes_[t];
      tg.g1_[t] = n.grad_or_null();
      tg.aside_[t] = {std::move(n.grad_buf), n.grad, n.pending};
      n.grad = nullptr;
      n.pending = nullptr;
    }
    tg.set_aside_ = true;
  }
  // Drops the adjoint tangents (for the next direction).
  static void clear_h(Tape& tape) {
    std::fill(tape.adj_.begin(), tape.adj_.end(), 0.0);
    for (TensorNode& n : tape.tnodes_) {
      tape.release(std::move(n.grad_buf));
      n.grad = nullptr;
    }
  }
  // Puts the first-order adjoints back.
  static void restore(Tape& tape, Tangents& tg) {
    if (!tg.set_aside_) return;
    clear_h(tape);
    std::copy(tg.sg1_.begin(), tg.sg1_.end(), tape.adj_.begin());
    for (std::uint32_t t = 0; t < tg.aside_.size(); ++t) {
      TensorNode& n = tape.tnodes_[t];
      n.grad_buf = std::move(tg.aside_[t].buf);
      n.grad = tg.aside_[t].grad;
      n.pending = tg.aside_[t].pending;
    }
    tg.set_aside_ = false;
  }
  // Resets the tangents (for the next direction).
  static void clear_tangents(Tape& tape, Tangents& tg) {
    std::fill(tg.tt_.begin(), tg.tt_.end(), nullptr);
    for (Buffer& b : tg.owned_) tape.release(std::move(b));
    tg.owned_.clear();
    std::fill(tg.st_.begin(), tg.st_.end(), 0.0);
  }

  // The second-order sweep over scalar nodes [lo, hi): h (in the tape's
  // adjoint column) moves down each edge like a gradient, and each curved op
  // adds g[out] times its second partials applied to the input tangents.
  static void second_scalars(Tape& tape, Tangents& tg, std::uint32_t lo, std::uint32_t hi) {
    const ScalarEdges* e = tape.scalars_.edges();
    const double* v = tape.scalars_.values();
    const double* st = tg.st_.data();
    const double* g1 = tg.sg1_.data();
    double* h = tape.adj_.data();
    for (std::uint32_t i = hi; i-- > lo;) {
      const ScalarEdges& n = e[i];
      const std::uint32_t a = n.a_op & Tape::kIndexMask, b = n.b;
      if (const double hi_ = h[i]; hi_ != 0.0) {
        h[a] += n.da * hi_;
        h[b] += n.db * hi_;
      }
      const auto op = static_cast<ScalarOp>(n.a_op >> Tape::kIndexBits);
      if (op == ScalarOp::custom && g1[i] != 0.0 && st[a] != 0.0) {  // a user's function
        h[a] += g1[i] * user_function_second(n.db, v[a], v[i]) * st[a];
        continue;
      }
      if (!curved(op) || g1[i] == 0.0) continue;
      const double ta = st[a], tb = st[b];
      if (ta == 0.0 && tb == 0.0) continue;
      // Operands: a sink input is a plain number kept in its slot.
      const double x = a ? v[a] : n.da, y = b ? v[b] : n.db;
      const Second s = second(op, x, y, v[i]);
      h[a] += g1[i] * (s.aa * ta + s.ab * tb);
      h[b] += g1[i] * (s.ab * ta + s.bb * tb);
    }
  }

  static void second_sweep(Tape& tape, Tangents& tg, Range r) {
    std::uint32_t s = r.s_hi;
    for (std::uint32_t t = r.t_hi; t-- > 0;) {
      TensorNode& n = tape.tnodes_[t];
      if (n.scalar_mark < s) {
        second_scalars(tape, tg, n.scalar_mark, s);
        s = n.scalar_mark;
      }
      if (!n.requires_grad || !n.op->backward) continue;
      const bool has_g =
          n.scalar_out != kNone ? tg.sg1_[n.scalar_out] != 0.0 : tg.g1_[t] != nullptr;
      if (has_g && tg.any_input(t)) {
        if (!n.op->curvature)
          throw Error(fmt::format(
              "higher-order sweep: op '{}' (tensor node t{}) has no second-order (curvature) "
              "rule{}",
              n.op->name, t, where(tape, NodeKind::tensor, t)));
        n.op->curvature(tape, t, tg);
      }
      if (n.scalar_out != kNone ? tape.adj_[n.scalar_out] == 0.0 : n.grad == nullptr) continue;
      n.op->backward(tape, t);
    }
    second_scalars(tape, tg, 1, s);
  }

  // Reads the (first-order, or during the second sweep, second-order)
  // adjoint column at the inputs.
  static void read_adjoints(Tape& tape, const std::vector<Ref>& ins, double* out) {
    for (const Ref& in : ins) {
      if (!in.is_tensor()) {
        *out++ = in.index() < tape.adj_.size() ? tape.adj_[in.index()] : 0.0;
        continue;
      }
      const TensorNode& n = tape.tnodes_[in.index()];
      const void* g = n.grad_or_null();
      dispatch_dtype(n.dtype, [&](auto z) {
        using T = decltype(z);
        for (std::int64_t i = 0, m = in.size(); i < m; ++i)
          out[i] = g ? static_cast<double>(static_cast<const T*>(g)[i]) : 0.0;
      });
      out += in.size();
    }
  }
  static void read_tangents(Tape& tape, Tangents& tg, const std::vector<Ref>& outs, double* out) {
    for (const Ref& o : outs) {
      if (!o.is_tensor()) {
        *out++ = tg.st_[o.index()];
        continue;
      }
      dispatch_dtype(tape.tnodes_[o.index()].dtype, [&](auto z) {
        using T = decltype(z);
        const T* p = tg.of<T>(o.index());
        for (std::int64_t i = 0, m = o.size(); i < m; ++i) out[i] = static_cast<double>(p[i]);
      });
      out += o.size();
    }
  }
  // Tangent k of the inputs: v (or the unit vector e_k when v is empty).
  static void seed(Tape& tape, Tangents& tg, const std::vector<Ref>& ins, std::span<const double> v,
                   std::size_t unit) {
    std::size_t off = 0;
    for (const Ref& in : ins) {
      const auto at = [&](std::size_t k) {
        return v.empty() ? (off + k == unit ? 1.0 : 0.0) : v[off + k];
      };
      if (!in.is_tensor()) {
        tg.st_[in.index()] = at(0);
        ++off;
        continue;
      }
      const std::size_t m = static_cast<std::size_t>(in.size());
      if (!v.empty() || (unit >= off && unit < off + m)) {
        void* p = tg.make(in.index());
        dispatch_dtype(tape.tnodes_[in.index()].dtype, [&](auto z) {
          using T = decltype(z);
          for (std::size_t k = 0; k < m; ++k) static_cast<T*>(p)[k] = static_cast<T>(at(k));
        });
      }
      off += m;
    }
  }
};

namespace {

Tape& common_tape(const char* what, const std::vector<Ref>& a, const std::vector<Ref>& b) {
  if (a.empty()) throw Error(fmt::format("{}: no outputs given", what));
  if (b.empty()) throw Error(fmt::format("{}: no inputs given", what));
  Tape& tape = a.front().tape();
  for (const auto* list : {&a, &b})
    for (const Ref& r : *list)
      if (&r.tape() != &tape)
        throw Error(fmt::format("{}: the values live on different tapes", what));
  tape.check_owner(what);
  return tape;
}

std::size_t total(const std::vector<Ref>& v) {
  std::size_t n = 0;
  for (const Ref& r : v) n += static_cast<std::size_t>(r.size());
  return n;
}

// Inputs are leaves that take gradients: the sweeps start and end there.
void check_inputs(const char* what, const std::vector<Ref>& ins) {
  for (std::size_t k = 0; k < ins.size(); ++k) {
    const Ref& r = ins[k];
    if (r.is_tensor()) {
      const TensorNode& n = r.tensor().node();
      if (n.op->backward || !n.requires_grad)
        throw Error(fmt::format(
            "{}: input {} (tensor node t{}, op '{}') is not a leaf that takes gradients; "
            "differentiate with respect to variables or parameters",
            what, k, r.index(), n.op->name));
    } else if (r.scalar().op() != ScalarOp::leaf) {
      throw Error(fmt::format(
          "{}: input {} (scalar node s{}, op '{}') is not a variable; differentiate with "
          "respect to variables",
          what, k, r.index(), scalar_op_name(r.scalar().op())));
    }
  }
}

void check_size(const char* what, const char* name, std::size_t got, std::size_t want) {
  if (got != want)
    throw Error(fmt::format("{}: {} has {} elements, but the {} hold {}", what, name, got,
                            std::string_view(name) == "u" ? "outputs" : "inputs", want));
}

}  // namespace
}  // namespace detail

using detail::HigherOrder;

std::vector<double> jvp(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                        std::span<const double> v) {
  Tape& tape = detail::common_tape("jvp", outputs, inputs);
  detail::check_inputs("jvp", inputs);
  detail::check_size("jvp", "v", v.size(), detail::total(inputs));
  detail::Range r;
  for (const Ref& o : outputs) r.cover(tape, o);
  Tangents tg(tape);
  HigherOrder::seed(tape, tg, inputs, v, 0);
  HigherOrder::tangent_sweep(tape, tg, r);
  std::vector<double> out(detail::total(outputs));
  HigherOrder::read_tangents(tape, tg, outputs, out.data());
  return out;
}

std::vector<double> vjp(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                        std::span<const double> u) {
  Tape& tape = detail::common_tape("vjp", outputs, inputs);
  detail::check_inputs("vjp", inputs);
  detail::check_size("vjp", "u", u.size(), detail::total(outputs));
  HigherOrder::seeded_sweep(tape, outputs, u);
  std::vector<double> out(detail::total(inputs));
  HigherOrder::read_adjoints(tape, inputs, out.data());
  return out;
}

std::vector<double> jacobian(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                             JacobianMode mode) {
  Tape& tape = detail::common_tape("jacobian", outputs, inputs);
  detail::check_inputs("jacobian", inputs);
  const std::size_t m = detail::total(outputs), n = detail::total(inputs);
  std::vector<double> J(m * n);
  if (mode == JacobianMode::automatic) mode = n < m ? JacobianMode::forward : JacobianMode::reverse;
  if (mode == JacobianMode::forward) {
    detail::Range r;
    for (const Ref& o : outputs) r.cover(tape, o);
    Tangents tg(tape);
    std::vector<double> col(m);
    for (std::size_t k = 0; k < n; ++k) {
      HigherOrder::clear_tangents(tape, tg);
      HigherOrder::seed(tape, tg, inputs, {}, k);
      HigherOrder::tangent_sweep(tape, tg, r);
      HigherOrder::read_tangents(tape, tg, outputs, col.data());
      for (std::size_t i = 0; i < m; ++i) J[i * n + k] = col[i];
    }
    return J;
  }
  std::vector<double> u(m, 0.0);
  for (std::size_t i = 0; i < m; ++i) {
    u[i] = 1.0;
    HigherOrder::seeded_sweep(tape, outputs, u);
    HigherOrder::read_adjoints(tape, inputs, J.data() + i * n);
    u[i] = 0.0;
  }
  return J;
}

namespace {
// The shared part of hvp and hessian: the first-order sweep, set aside.
detail::Range first_order(Tape& tape, const char* what, const Ref& output, Tangents& tg) {
  if (output.size() != 1)
    throw Error(
        fmt::format("{}: the output has {} elements; a Hessian needs a one-element output (a loss)",
                    what, output.size()));
  const std::vector<Ref> outs{output};
  const double one = 1.0;
  const detail::Range r = HigherOrder::seeded_sweep(tape, outs, std::span<const double>(&one, 1));
  HigherOrder::set_aside(tape, tg);
  return r;
}
}  // namespace

std::vector<double> hvp(const Ref& output, const std::vector<Ref>& inputs,
                        std::span<const double> v) {
  Tape& tape = detail::common_tape("hvp", {output}, inputs);
  detail::check_inputs("hvp", inputs);
  detail::check_size("hvp", "v", v.size(), detail::total(inputs));
  Tangents tg(tape);
  std::vector<double> out(detail::total(inputs));
  try {
    const detail::Range r = first_order(tape, "hvp", output, tg);
    HigherOrder::seed(tape, tg, inputs, v, 0);
    HigherOrder::tangent_sweep(tape, tg, r);
    HigherOrder::second_sweep(tape, tg, r);
    HigherOrder::read_adjoints(tape, inputs, out.data());
  } catch (...) {
    HigherOrder::restore(tape, tg);
    throw;
  }
  HigherOrder::restore(tape, tg);
  return out;
}

std::vector<double> hessian(const Ref& output, const std::vector<Ref>& inputs) {
  Tape& tape = detail::common_tape("hessian", {output}, inputs);
  detail::check_inputs("hessian", inputs);
  const std::size_t n = detail::total(inputs);
  std::vector<double> H(n * n);
  Tangents tg(tape);
  try {
    const detail::Range r = first_order(tape, "hessian", output, tg);
    for (std::size_t k = 0; k < n; ++k) {
      HigherOrder::clear_tangents(tape, tg);
      HigherOrder::clear_h(tape);
      HigherOrder::seed(tape, tg, inputs, {}, k);
      HigherOrder::tangent_sweep(tape, tg, r);
      HigherOrder::second_sweep(tape, tg, r);
      HigherOrder::read_adjoints(tape, inputs, H.data() + k * n);  // row k = column k
    }
  } catch (...) {
    HigherOrder::restore(tape, tg);
    throw;
  }
  HigherOrder::restore(tape, tg);
  return H;
}

}  // namespace tapegrad
