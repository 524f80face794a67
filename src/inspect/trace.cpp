// Flat-code traces of the forward and backward sweeps, with the numbers.
#include <fmt/format.h>

#include <cmath>
#include <map>

#include "core/rules.hpp"
#include "inspect/graph.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {
namespace {

using namespace detail;

const char* symbol(ScalarOp op) {
  switch (op) {
    case ScalarOp::add:
      return "+";
    case ScalarOp::sub:
      return "-";
    case ScalarOp::mul:
      return "×";
    case ScalarOp::div:
      return "/";
    case ScalarOp::pow:
      return "^";
    default:
      return nullptr;
  }
}

// Why this edge carries what it carries: the gate pattern of the op.
std::string gate_note(const Tape& tape, NodeId n, int slot, double local) {
  if (n.tensor) {
    const TensorNode& t = tape.tensor_node(n.index);
    const std::string gate = gate_text(*t.op);
    return gate.empty() ? std::string(t.op->name) : fmt::format("{}: {}", t.op->name, gate);
  }
  const ScalarOp op = tape.scalar_op(n.index);
  const std::string name = scalar_op_name(op);
  if (op == ScalarOp::lin) return "lin: distributes, × its weight";
  if (op == ScalarOp::custom)
    return detail::user_function_name(tape, n.index) + ": your function's derivative";
  if (const char* note = detail::scalar_note(op, slot, local)) return name + ": " + note;
  return name;
}

std::string value_text(const Tape& tape, NodeId n) {
  const auto v = detail::node_values(tape, n);
  if (v.size() == 1) return fmt_num(v[0]);
  if (v.size() <= 6) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) s += ", ";
      s += fmt_num(v[i]);
    }
    return s + "]";
  }
  double s2 = 0;
  for (double x : v) s2 += x * x;
  return fmt::format("(norm {})", fmt_num(std::sqrt(s2)));
}

std::string pad(std::string s, std::size_t width) {
  // Pads by display width: count UTF-8 lead bytes only.
  std::size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  if (cols < width) s.append(width - cols, ' ');
  return s;
}

}  // namespace

namespace detail {

SweepTrace describe_sweeps(Tape& tape, NodeId root) {
  SweepTrace tr;
  const auto nodes = ancestors(tape, root);
  std::map<std::string, int> uses;
  for (const NodeId& n : nodes)
    for (const auto& e : inputs_of(tape, n)) ++uses[e.from.str()];
  for (const NodeId& n : nodes) {
    const auto ins = inputs_of(tape, n);
    const std::string* name = tape.label(n.kind(), n.index);
    std::string rhs;
    if (!n.tensor) {
      const ScalarOp op = tape.scalar_op(n.index);
      if (op == ScalarOp::leaf || op == ScalarOp::constant)
        rhs = name ? *name : scalar_op_name(op);
      else if (op == ScalarOp::lin)  // "0.5·s3 + 2·s4", "0.5·s3 + 1"
        rhs = fmt::format("{}·{} + {}", fmt_num(tape.scalar_edges(n.index).da),
                          operand_str(tape, n.index, 0),
                          tape.scalar_edges(n.index).b
                              ? fmt::format("{}·{}", fmt_num(tape.scalar_edges(n.index).db),
                                            operand_str(tape, n.index, 1))
                              : operand_str(tape, n.index, 1));
      else if (const char* sym = symbol(op))
        rhs = fmt::format("{} {} {}", operand_str(tape, n.index, 0), sym,
                          operand_str(tape, n.index, 1));
      else if (is_binary(op))
        rhs = fmt::format("{}({}, {})", scalar_op_name(op), operand_str(tape, n.index, 0),
                          operand_str(tape, n.index, 1));
      else
        rhs = fmt::format("{}({})", scalar_op_name(op), ins.empty() ? "" : ins[0].from.str());
    } else {
      const TensorNode& t = tape.tensor_node(n.index);
      std::string args;
      for (const auto& e : ins) {
        if (!args.empty()) args += ", ";
        args += e.from.str();
      }
      rhs = ins.empty() ? (name ? *name : (t.label ? t.label : t.op->name))
                        : fmt::format("{}({})", t.op->name, args);
      if (t.scalar_out == kNone) rhs += " " + t.shape.str();
    }
    if (n.tensor && tape.tensor_node(n.index).scalar_out != kNone)
      tr.forward.push_back({n, fmt::format("{} = {}", n.str(), rhs)});
    else
      tr.forward.push_back({n, fmt::format("{} = {} = {}", n.str(), rhs, value_text(tape, n))});
  }
  const auto root_grad = node_grads(tape, root);
  tr.seed = fmt::format("grad_{} = {}   (seed)", root.str(),
                        root_grad.size() == 1 ? fmt_num(root_grad[0]) : "seed");
  const auto shared = [&](const NodeId& from) {
    const int u = uses[from.str()];
    return u > 1 ? fmt::format("; {} has {} uses, their gradients add up", from.str(), u)
                 : std::string();
  };
  for (std::size_t i = nodes.size(); i-- > 0;) {
    const NodeId n = nodes[i];
    const auto ins = inputs_of(tape, n);
    if (ins.empty()) continue;
    SweepStep step{n, {}};
    if (!n.tensor) {
      const double up = node_grads(tape, n)[0];
      const ScalarEdges& se = tape.scalar_edges(n.index);
      if (tape.scalar_op(n.index) == ScalarOp::item) continue;  // the item node carries it
      for (std::size_t k = 0; k < ins.size(); ++k) {
        const auto& e = ins[k];
        const double local = e.slot == 0 ? se.da : se.db;
        const std::string note = gate_note(tape, n, e.slot, local) + shared(e.from);
        step.lines.push_back({e.from,
                              static_cast<int>(k),
                              pad(fmt::format("grad_{} += grad_{} × {} = {}", e.from.str(), n.str(),
                                              fmt_num(local), fmt_num(up * local)),
                                  44) +
                                  " (" + note + ")",
                              {up * local}});
      }
    } else {
      const auto grads = tensor_edge_grads(tape, n.index);
      for (std::size_t k = 0; k < ins.size(); ++k) {
        if (grads[k].empty()) continue;
        std::string carried;
        if (grads[k].size() == 1) {
          carried = fmt_num(grads[k][0]);
        } else {
          double s2 = 0;
          for (double x : grads[k]) s2 += x * x;
          carried = fmt::format("(norm {})", fmt_num(std::sqrt(s2)));
        }
        const std::string note = gate_note(tape, n, static_cast<int>(k), 1) + shared(ins[k].from);
        step.lines.push_back(
            {ins[k].from, static_cast<int>(k),
             pad(fmt::format("grad_{} += {}_backward(grad_{}) = {}", ins[k].from.str(),
                             tape.tensor_node(n.index).op->name, n.str(), carried),
                 44) +
                 " (" + note + ")",
             grads[k]});
      }
    }
    if (!step.lines.empty()) tr.backward.push_back(std::move(step));
  }
  for (const NodeId& n : nodes) {
    if (!inputs_of(tape, n).empty()) continue;
    const bool wants = n.tensor ? tape.tensor_node(n.index).requires_grad
                                : tape.scalar_op(n.index) == ScalarOp::leaf;
    if (!wants) continue;
    const std::string* name = tape.label(n.kind(), n.index);
    const auto g = node_grads(tape, n);
    std::string gt;
    if (g.size() == 1) {
      gt = fmt_num(g[0]);
    } else {
      gt = "[";
      for (std::size_t i = 0; i < g.size() && i < 8; ++i) {
        if (i) gt += ", ";
        gt += fmt_num(g[i]);
      }
      gt += g.size() > 8 ? ", ...]" : "]";
    }
    tr.finals.push_back(
        {n, fmt::format("grad_{}{} = {}", n.str(), name ? " (" + *name + ")" : std::string(), gt)});
  }
  return tr;
}

std::string format_trace(const SweepTrace& tr) {
  std::string out = "# forward sweep, in creation order\n";
  for (const auto& [n, line] : tr.forward) out += line + "\n";
  out += "\n# backward sweep, in reverse order: downstream += upstream × local\n";
  out += tr.seed + "\n";
  for (const SweepStep& s : tr.backward)
    for (const SweepLine& l : s.lines) out += l.text + "\n";
  out += "\n# gradients\n";
  for (const auto& [n, line] : tr.finals) out += line + "\n";
  return out;
}

}  // namespace detail

std::string trace(const Scalar& root) {
  Tape& tape = root.checked("trace");
  return detail::format_trace(detail::describe_sweeps(tape, {false, root.index()}));
}
std::string trace(const Tensor& root) {
  Tape& tape = root.checked("trace");
  return detail::format_trace(detail::describe_sweeps(tape, {true, root.index()}));
}

}  // namespace tapegrad
