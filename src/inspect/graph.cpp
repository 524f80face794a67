#include "inspect/graph.hpp"

#include "tapegrad/userfn.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

namespace tapegrad::detail {

bool is_binary(ScalarOp op) { return scalar_op_binary(op); }

namespace {
// The item node that produced scalar s (it is recorded right before s).
std::uint32_t item_of(const Tape& tape, std::uint32_t s) {
  for (std::size_t t = tape.tensor_count(); t-- > 0;) {
    const TensorNode& n = tape.tensor_node(static_cast<std::uint32_t>(t));
    if (n.scalar_out == s) return static_cast<std::uint32_t>(t);
    if (n.scalar_mark < s) break;
  }
  return kNone;
}

// Position in the single creation order: tensor t precedes scalar s iff mark <= s.
std::tuple<std::uint32_t, int, std::uint32_t> order_key(const Tape& tape, NodeId n) {
  if (n.tensor) return {tape.tensor_node(n.index).scalar_mark, 0, n.index};
  return {n.index, 1, 0};
}
}  // namespace

std::vector<InEdge> inputs_of(const Tape& tape, NodeId n) {
  std::vector<InEdge> out;
  if (!n.tensor) {
    const ScalarOp op = tape.scalar_op(n.index);
    if (op == ScalarOp::leaf || op == ScalarOp::constant || op == ScalarOp::sink) return out;
    if (op == ScalarOp::item) {
      const std::uint32_t t = item_of(tape, n.index);
      if (t != kNone) out.push_back({{true, t}, 0});
      return out;
    }
    // An input that is the sink is a plain number kept on the node, not an edge.
    if (const std::uint32_t a = tape.scalar_input_a(n.index)) out.push_back({{false, a}, 0});
    if (const std::uint32_t b = tape.scalar_edges(n.index).b; b && is_binary(op))
      out.push_back({{false, b}, 1});
    return out;
  }
  const TensorNode& t = tape.tensor_node(n.index);
  for (int k = 0; k < t.n_in; ++k) out.push_back({{true, t.in[k]}, k});
  if (t.scalar_in != kNone) out.push_back({{false, t.scalar_in}, -1});
  return out;
}

std::vector<NodeId> ancestors(const Tape& tape, NodeId root) {
  std::vector<char> seen_s(tape.scalar_count(), 0), seen_t(tape.tensor_count(), 0);
  std::vector<NodeId> stack{root}, out;
  while (!stack.empty()) {  // iterative: deep graphs must not overflow the stack
    const NodeId n = stack.back();
    stack.pop_back();
    char& seen = n.tensor ? seen_t[n.index] : seen_s[n.index];
    if (seen) continue;
    seen = 1;
    out.push_back(n);
    for (const InEdge& e : inputs_of(tape, n)) stack.push_back(e.from);
  }
  std::sort(out.begin(), out.end(),
            [&](NodeId a, NodeId b) { return order_key(tape, a) < order_key(tape, b); });
  return out;
}

std::string operand_str(const Tape& tape, std::uint32_t s, int slot) {
  const std::uint32_t in = slot == 0 ? tape.scalar_input_a(s) : tape.scalar_edges(s).b;
  if (in) return fmt::format("s{}", in);
  return fmt_num(tape.scalar_operand(s, slot));
}

std::string op_name(const Tape& tape, NodeId n) {
  if (n.tensor) return tape.tensor_node(n.index).op->name;
  const ScalarOp op = tape.scalar_op(n.index);
  if (op == ScalarOp::custom) return detail::user_function_name(tape, n.index);
  const std::string name = scalar_op_name(op);
  if (!is_binary(op)) return name;
  const ScalarEdges& e = tape.scalar_edges(n.index);
  // A weighted sum shows its weights: "lin(w 0.5, -2)", or with a number
  // added, "lin(w 0.5; + 1)".
  if (op == ScalarOp::lin)
    return e.b ? fmt::format("lin(w {}, {})", fmt_num(e.da), fmt_num(e.db))
               : fmt::format("lin(w {}; + {})", fmt_num(e.da), fmt_num(e.db));
  // A plain number kept on the node: "mul(·, 2)", "sub(1, ·)".
  const bool num_a = tape.scalar_input_a(n.index) == 0, num_b = e.b == 0;
  if (!num_a && !num_b) return name;
  return fmt::format("{}({}, {})", name, num_a ? fmt_num(e.da) : "·", num_b ? fmt_num(e.db) : "·");
}

std::vector<double> node_values(const Tape& tape, NodeId n) {
  if (!n.tensor) return {tape.scalar_value(n.index)};
  const TensorNode& t = tape.tensor_node(n.index);
  std::vector<double> v(t.value ? static_cast<std::size_t>(t.shape.numel()) : 0);
  dispatch_dtype(t.dtype, [&](auto z) {
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<double>(static_cast<const decltype(z)*>(t.value)[i]);
  });
  return v;
}

std::vector<double> node_grads(const Tape& tape, NodeId n) {
  if (!n.tensor) {
    const ScalarOp op = tape.scalar_op(n.index);
    return {op == ScalarOp::constant ? 0.0 : tape.scalar_grad(n.index)};
  }
  const TensorNode& t = tape.tensor_node(n.index);
  if (t.scalar_out != kNone) return {tape.scalar_grad(t.scalar_out)};
  std::vector<double> v(static_cast<std::size_t>(t.shape.numel()), 0.0);
  const void* g = t.grad_or_null();
  if (!g) return v;
  dispatch_dtype(t.dtype, [&](auto z) {
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<double>(static_cast<const decltype(z)*>(g)[i]);
  });
  return v;
}

std::vector<std::vector<double>> tensor_edge_grads(Tape& tape, std::uint32_t t) {
  TensorNode& n = tape.tensor_node(t);
  const auto edges = inputs_of(tape, {true, t});
  std::vector<std::vector<double>> out(edges.size());
  const bool live =
      n.requires_grad && n.op->backward &&
      (n.scalar_out != kNone ? tape.scalar_grad(n.scalar_out) != 0.0 : n.grad != nullptr);
  if (!live) return out;
  // Swap each input's gradient for a fresh zero buffer, run the rule, read,
  // put everything back.
  struct Saved {
    std::uint32_t t;
    void* grad;
    Buffer buf;
  };
  std::vector<Saved> saved;
  for (int k = 0; k < n.n_in; ++k) {
    TensorNode& in = tape.tensor_node(n.in[k]);
    if (std::any_of(saved.begin(), saved.end(), [&](const Saved& s) { return s.t == n.in[k]; }))
      continue;
    saved.push_back({n.in[k], in.grad, std::move(in.grad_buf)});
    in.grad = nullptr;
  }
  double* adj = tape.scalar_adjoints();
  const double saved_adj = n.scalar_in != kNone ? adj[n.scalar_in] : 0.0;
  if (n.scalar_in != kNone) adj[n.scalar_in] = 0.0;
  n.op->backward(tape, t);
  std::size_t e = 0;
  for (const InEdge& edge : edges) {
    if (edge.from.tensor) {
      out[e] = node_grads(tape, edge.from);
      if (!tape.tensor_node(edge.from.index).requires_grad) out[e].clear();
    } else {
      out[e] = {tape.scalar_adjoints()[edge.from.index]};
    }
    ++e;
  }
  for (Saved& s : saved) {
    TensorNode& in = tape.tensor_node(s.t);
    tape.release(std::move(in.grad_buf));
    in.grad_buf = std::move(s.buf);
    in.grad = s.grad;
  }
  if (n.scalar_in != kNone) tape.scalar_adjoints()[n.scalar_in] = saved_adj;
  return out;
}

std::string fmt_num(double v) {
  if (v == 0) return "0";
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  const double a = std::fabs(v);
  if (a >= 1e-4 && a < 1e6) {
    std::string s = fmt::format("{:.6f}", v);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  return fmt::format("{:.4e}", v);
}

}  // namespace tapegrad::detail
