// Anomaly detection: the first NaN or infinity of a forward value or of a
// gradient in the sweep, reported with the node, its op, shapes, scope and
// the source line that created it.
#include <fmt/format.h>

#include <cmath>

#include "tapegrad/tape.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {

// ---- where nodes come from ----

std::string site_str(const Site& s) {
  if (s.line() == 0) return {};
  return fmt::format("{}:{} ({})", s.file_name(), s.line(), s.function_name());
}

std::string Tape::origin(NodeKind kind, std::uint32_t index) const {
  const bool tensor = kind == NodeKind::tensor;
  const Site site = tensor ? tnodes_[index].site : scalar_site(index);
  const Site caller = tensor ? tnodes_[index].caller : scalar_caller(index);
  std::string out;
  if (site.line() != 0) out = "created at " + site_str(site);
  if (caller.line() != 0)
    out +=
        fmt::format("{} called from {}", out.empty() ? "created in a call" : ",", site_str(caller));
  return out;
}

namespace {
// "; created at ..." to end a message, or nothing when the site is unknown.
std::string tail(const std::string& origin) { return origin.empty() ? origin : "; " + origin; }
// A scalar node's op by name: a user function by its own.
std::string op_label(const Tape& tape, std::uint32_t s) {
  const ScalarOp op = tape.scalar_op(s);
  return op == ScalarOp::custom ? detail::user_function_name(tape, s) : scalar_op_name(op);
}
}  // namespace

// ---- anomaly detection ----

namespace {
// Index of the first non-finite element, or -1; which kind in `what`.
template <class T>
std::int64_t first_bad(const T* p, std::int64_t n, const char** what) {
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) {
      *what = std::isnan(p[i]) ? "NaN" : "infinity";
      return i;
    }
  return -1;
}
std::int64_t first_bad(DType dt, const void* p, std::int64_t n, const char** what) {
  if (!p) return -1;
  return dt == DType::f32 ? first_bad(static_cast<const float*>(p), n, what)
                          : first_bad(static_cast<const double*>(p), n, what);
}
}  // namespace

void Tape::throw_anomaly(const std::string& what, NodeKind kind, std::uint32_t node) const {
  throw AnomalyError(
      "anomaly: " + what + tail(origin(kind, node)) + " (anomaly detection is on for this tape)",
      what, kind, node);
}

void Tape::check_scalar_forward(std::uint32_t s) const {
  const double v = scalar_value(s);
  if (std::isfinite(v)) return;
  const ScalarOp op = scalar_op(s);
  std::string ins;
  if (op != ScalarOp::leaf && op != ScalarOp::constant) {
    // Inputs by slot; a sink input of a binary op is a plain number on the node.
    const std::uint32_t a = scalar_input_a(s), b = scalar_edges(s).b;
    const auto text = [&](std::uint32_t in, int slot) {
      const std::string* l = in ? label(NodeKind::scalar, in) : nullptr;
      return in ? fmt::format("s{}{} = {}", in, l ? " '" + *l + "'" : "", scalar_value(in))
                : fmt::format("the number {}", scalar_operand(s, slot));
    };
    ins = " from " + text(a, 0);
    if (scalar_op_binary(op)) ins += " and " + text(b, 1);
  }
  throw_anomaly(fmt::format("{} in the forward sweep: scalar node s{} ({}){} is {}",
                            std::isnan(v) ? "NaN" : "infinity", s, op_label(*this, s), ins, v),
                NodeKind::scalar, s);
}

void Tape::check_tensor_forward(std::uint32_t t) const {
  const TensorNode& n = tnodes_[t];
  const char* what = nullptr;
  const std::int64_t i = first_bad(n.dtype, n.value, n.value ? n.shape.numel() : 0, &what);
  if (i < 0) return;
  std::string ins;
  for (int k = 0; k < n.n_in; ++k)
    ins += fmt::format("{}t{} {}", k ? ", " : "", n.in[k], tnodes_[n.in[k]].shape.str());
  throw_anomaly(
      fmt::format(
          "{} in the forward sweep: element {} of tensor node t{}{} ({}, shape {}, {}{}{}){}", what,
          i, t, n.label ? fmt::format(" '{}'", n.label) : std::string(), n.op->name, n.shape.str(),
          dtype_name(n.dtype), ins.empty() ? "" : ", inputs ", ins,
          n.scope == kNone ? std::string() : fmt::format(", in scope '{}'", scope_names_[n.scope])),
      NodeKind::tensor, t);
}

void Tape::check_tensor_backward(std::uint32_t t) {
  const TensorNode& n = tnodes_[t];
  for (int k = 0; k < n.n_in; ++k) {
    const TensorNode& in = tnodes_[n.in[k]];
    const char* what = nullptr;
    const std::int64_t i = first_bad(in.dtype, in.grad_or_null(), in.shape.numel(), &what);
    if (i >= 0)
      throw_anomaly(
          fmt::format(
              "{} in the backward sweep: the rule of tensor node t{} ({}, shape {}{}) sent it to "
              "element {} of the gradient of its input {}, t{} ({}, shape {})",
              what, t, n.op->name, n.shape.str(),
              n.scope == kNone ? std::string() : fmt::format(", scope '{}'", scope_names_[n.scope]),
              i, k, n.in[k], in.op->name, in.shape.str()),
          NodeKind::tensor, t);
  }
  if (n.scalar_in != kNone && !std::isfinite(adj_[n.scalar_in]))
    throw_anomaly(
        fmt::format(
            "{} in the backward sweep: the rule of tensor node t{} ({}) sent it to scalar node s{}",
            std::isnan(adj_[n.scalar_in]) ? "NaN" : "infinity", t, n.op->name, n.scalar_in),
        NodeKind::tensor, t);
}

void Tape::sweep_scalars_checked(std::uint32_t lo, std::uint32_t hi) {
  const ScalarEdges* e = scalars_.edges();
  double* g = adj_.data();
  for (std::uint32_t i = hi; i-- > lo;) {
    const double gi = g[i];
    if (gi == 0.0) continue;
    const ScalarEdges& n = e[i];
    const std::uint32_t a = n.a_op & kIndexMask;
    g[a] += n.da * gi;
    g[n.b] += n.db * gi;
    for (const auto& [in, local] : {std::pair{a, n.da}, std::pair{n.b, n.db}}) {
      if (in == 0 || std::isfinite(g[in])) continue;
      throw_anomaly(
          fmt::format(
              "{} in the backward sweep: the rule of scalar node s{} ({}, value {}) sent it to "
              "node s{} (upstream gradient {}, local partial {})",
              std::isnan(g[in]) ? "NaN" : "infinity", i, op_label(*this, i), scalar_value(i), in,
              gi, local),
          NodeKind::scalar, i);
    }
  }
}

}  // namespace tapegrad
