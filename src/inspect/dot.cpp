// DOT export: the graph behind a root, drawn so the gate patterns show —
// each edge carries "upstream x local", fan-outs add, routers send 0 one way.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/rules.hpp"
#include "inspect/graph.hpp"

namespace tapegrad {
namespace {

using detail::fmt_num;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}
double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::isnan(x) ? INFINITY : std::fabs(x));
  return m;
}

// "[1, 2, 3]" for small tensors, "min a  max b  |.| c" otherwise.
std::string summary(const std::vector<double>& v, int max_entries) {
  if (v.empty()) return "-";
  if (static_cast<int>(v.size()) <= max_entries) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) s += ", ";
      s += fmt_num(v[i]);
    }
    return s + "]";
  }
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return fmt::format("min {}  max {}  norm {}", fmt_num(*lo), fmt_num(*hi), fmt_num(norm(v)));
}

struct Edge {
  NodeId from, to;
  std::string label;
  double magnitude;  // |carried gradient| (norm for tensors); NaN counts as exploding
  bool has_grad;
  std::size_t k;  // position of `from` among the inputs of `to`
};

std::string node_name(const Tape& tape, NodeId n) {
  if (const std::string* l = tape.label(n.kind(), n.index)) return *l;
  if (n.tensor && tape.tensor_node(n.index).label) return tape.tensor_node(n.index).label;
  return "";
}

}  // namespace

std::string detail::build_dot(Tape& tape, NodeId root, const DotOptions& opt) {
  const std::vector<NodeId> nodes = detail::ancestors(tape, root);
  std::map<std::string, int> uses;  // consumers of each node inside the graph
  std::vector<Edge> edges;
  for (const NodeId& n : nodes) {
    const auto ins = detail::inputs_of(tape, n);
    std::vector<std::vector<double>> tgrads;
    if (n.tensor) tgrads = detail::tensor_edge_grads(tape, n.index);
    for (std::size_t k = 0; k < ins.size(); ++k) {
      const auto& e = ins[k];
      ++uses[e.from.str()];
      Edge out{e.from, n, "", 0, false, k};
      if (!n.tensor) {
        const ScalarEdges& se = tape.scalar_edges(n.index);
        const ScalarOp op = tape.scalar_op(n.index);
        const double up = detail::node_grads(tape, n)[0];
        if (op == ScalarOp::item) {
          out.label = fmt_num(up), out.magnitude = std::fabs(up), out.has_grad = up != 0;
        } else {
          const double local = e.slot == 0 ? se.da : se.db;
          const double carried = up * local;
          out.magnitude = std::isnan(carried) ? INFINITY : std::fabs(carried);
          out.has_grad = true;
          out.label = fmt::format("{}\n= {} × {}", fmt_num(carried), fmt_num(up), fmt_num(local));
          const Gate gate = detail::scalar_gate(op);
          if (gate == Gate::routes && local == 0) out.label += "\n(routed away)";
          if (gate == Gate::switches && local != 0) out.label += " (other input)";
          if (gate == Gate::distributes)
            out.label += op == ScalarOp::lin ? " (weight)" : " (distributes)";
        }
      } else {
        const auto& g = tgrads[k];
        if (!g.empty()) {
          out.has_grad = true;
          out.magnitude = g.size() == 1 ? std::fabs(g[0]) : norm(g);
          if (std::any_of(g.begin(), g.end(), [](double x) { return std::isnan(x); }))
            out.magnitude = INFINITY;
          out.label = summary(g, opt.max_entries);
          if (g.size() > 1 && std::all_of(g.begin(), g.end(), [](double x) { return x == 0; }))
            out.label = "0 (routed away)";
        }
      }
      edges.push_back(out);
    }
  }

  double biggest = 0;
  for (const Edge& e : edges)
    if (std::isfinite(e.magnitude)) biggest = std::max(biggest, e.magnitude);

  // Clusters by scope name.
  std::map<std::uint32_t, std::vector<NodeId>> clusters;
  for (const NodeId& n : nodes)
    if (n.tensor && tape.tensor_node(n.index).scope != kNone)
      clusters[tape.tensor_node(n.index).scope].push_back(n);
  const auto collapsed_id = [&](const NodeId& n) -> std::string {
    if (opt.collapse_scopes && n.tensor && tape.tensor_node(n.index).scope != kNone)
      return fmt::format("scope{}", tape.tensor_node(n.index).scope);
    return n.str();
  };

  std::string out = fmt::format(
      "digraph tapegrad {{\n  rankdir=LR;\n  node [fontname=\"{0}\", fontsize=10];\n"
      "  edge [fontname=\"{0}\", fontsize=9];\n",
      esc(opt.font));
  if (!opt.title.empty())
    out += fmt::format("  label=\"{}\"; labelloc=t; fontname=\"{}\";\n", esc(opt.title),
                       esc(opt.font));
  const auto node_line = [&](const NodeId& n) {
    const std::string name = node_name(tape, n), op = detail::op_name(tape, n);
    const bool highlighted =
        std::find(opt.highlight.begin(), opt.highlight.end(), n) != opt.highlight.end();
    std::string label = name.empty() ? fmt::format("{}  {}", n.str(), op)
                                     : fmt::format("{}  {} ({})", n.str(), name, op);
    std::string style = "rounded", fill = "white", shape = "box", extra;
    const auto vals = detail::node_values(tape, n);
    const auto grads = detail::node_grads(tape, n);
    bool leaf = false, wants = true;
    if (!n.tensor) {
      const ScalarOp sop = tape.scalar_op(n.index);
      leaf = sop == ScalarOp::leaf || sop == ScalarOp::constant;
      wants = sop != ScalarOp::constant;
      label += fmt::format("\nvalue {}", fmt_num(vals[0]));
      if (wants) label += fmt::format("\ngrad {}", fmt_num(grads[0]));
    } else {
      const TensorNode& t = tape.tensor_node(n.index);
      leaf = !t.op->backward;
      wants = t.requires_grad;
      if (t.scalar_out == kNone) {
        label += fmt::format(" {} {}\nvalue {}", t.shape.str(), dtype_name(t.dtype),
                             summary(vals, opt.max_entries));
        if (wants) label += "\ngrad " + summary(grads, opt.max_entries);
      }
    }
    const int u = uses[n.str()];
    if (u > 1 && wants) label += fmt::format("\n({} uses: their gradients add up)", u);
    const double gmag = max_abs(grads);
    if (wants && n != root) {
      if (gmag < opt.vanishing)
        label += "\nVANISHING gradient", extra += ", color=\"gray55\", fontcolor=\"gray40\"";
      else if (!(gmag <= opt.exploding))
        label += "\nEXPLODING gradient", extra += ", color=\"red3\", penwidth=2";
    }
    if (leaf && wants)
      fill = "#d8ecff", style = "rounded,filled";  // variables, parameters
    else if (leaf)
      fill = "#eeeeee", style = "rounded,filled,dashed";  // data and constants
    else
      style = "rounded,filled", fill = n.tensor ? "#fff6dc" : "#ffffff";  // computed
    if (n == root) extra += ", peripheries=2";
    if (opt.svg_ids) extra += fmt::format(", id=\"{}\"", n.str());
    if (highlighted)
      fill = "#ffb3b3", extra += ", color=\"red\", penwidth=3", label += "\nFAILED node check";
    return fmt::format("  {} [shape={}, style=\"{}\", fillcolor=\"{}\", label=\"{}\"{}];\n",
                       n.str(), shape, style, fill, esc(label), extra);
  };
  std::set<std::uint32_t> emitted_scopes;
  for (const auto& [scope, members] : clusters) {
    const std::string& sname = tape.scope_names()[scope];
    if (opt.collapse_scopes) {
      std::string ops;
      for (const NodeId& m : members) {
        if (!ops.empty()) ops += " → ";
        ops += detail::op_name(tape, m);
      }
      out += fmt::format(
          "  scope{} [shape=box3d, style=filled, fillcolor=\"#e8f5e9\", label=\"{}\n{}\"];\n",
          scope, esc(sname), esc(ops));
      continue;
    }
    out += fmt::format(
        "  subgraph cluster_{} {{\n    label=\"{}\"; style=\"rounded,dashed\"; color=\"gray50\";\n",
        scope, esc(sname));
    for (const NodeId& m : members) out += "  " + node_line(m);
    out += "  }\n";
  }
  for (const NodeId& n : nodes)
    if (!(n.tensor && tape.tensor_node(n.index).scope != kNone)) out += node_line(n);
  std::set<std::pair<std::string, std::string>> drawn;
  for (const Edge& e : edges) {
    const std::string a = collapsed_id(e.from), b = collapsed_id(e.to);
    if (a == b) continue;  // inside a collapsed scope
    if (opt.collapse_scopes && (a != e.from.str() || b != e.to.str())) {
      if (!drawn.insert({a, b}).second) continue;
      out += fmt::format("  {} -> {};\n", a, b);
      continue;
    }
    std::string attrs;
    if (!e.has_grad) {
      attrs = "style=dotted, color=\"gray60\"";
      if (opt.svg_ids) attrs += fmt::format(", id=\"e_{}_{}\"", e.to.str(), e.k);
    } else {
      const double w =
          biggest > 0 && std::isfinite(e.magnitude) ? 1 + 4 * e.magnitude / biggest : 1;
      attrs = fmt::format("label=\"{}\", penwidth={:.2f}", esc(e.label),
                          std::isfinite(e.magnitude) ? w : 5.0);
      if (opt.svg_ids) attrs += fmt::format(", id=\"e_{}_{}\"", e.to.str(), e.k);
      if (e.magnitude < opt.vanishing)
        attrs += ", color=\"gray55\", style=dashed";
      else if (!(e.magnitude <= opt.exploding))
        attrs += ", color=\"red3\"";
    }
    out += fmt::format("  {} -> {} [{}];\n", e.from.str(), e.to.str(), attrs);
  }
  out += "}\n";
  return out;
}

std::string to_dot(const Scalar& root, const DotOptions& opt) {
  Tape& tape = root.checked("to_dot");
  return detail::build_dot(tape, {false, root.index()}, opt);
}
std::string to_dot(const Tensor& root, const DotOptions& opt) {
  Tape& tape = root.checked("to_dot");
  return detail::build_dot(tape, {true, root.index()}, opt);
}

}  // namespace tapegrad
