// The graph explorer: one self-contained HTML page per graph, with the
// Graphviz layout inlined as SVG, every node's numbers as JSON, and a script
// of our own that steps through the backward sweep line by line of `trace`.
#include "inspect/html.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "core/rules.hpp"
#include "inspect/graph.hpp"

namespace tapegrad {
namespace detail {

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\', o += static_cast<char>(c);
    } else if (c == '\n') {
      o += "\\n";
    } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      o += fmt::format("\\u{:04x}", c);
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + '"';
}

std::string json_number(double v) {
  if (std::isnan(v)) return "\"NaN\"";
  if (std::isinf(v)) return v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  return fmt::format("{}", v);
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(fmt::format("{}: cannot write (is the folder there and writable?)", path));
    if (!(f << text) || !f.flush()) {
      std::remove(tmp.c_str());
      throw Error(fmt::format("{}: write failed (disk full?)", path));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(fmt::format("{}: cannot move the new file into place", path));
  }
}

namespace {

std::string json_array(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += json_number(v[i]);
  }
  return s + "]";
}

// min, max, mean and norm of a tensor's numbers.
std::string json_summary(const std::vector<double>& v) {
  if (v.empty()) return "null";
  double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
  for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x), sum += x, sq += x * x;
  return fmt::format("{{\"min\":{},\"max\":{},\"mean\":{},\"norm\":{}}}", json_number(lo),
                     json_number(hi), json_number(sum / static_cast<double>(v.size())),
                     json_number(std::sqrt(sq)));
}

// The gate pattern of a node's op, in the words of the DOT and the trace.
std::string gate_of(const Tape& tape, NodeId n) {
  if (n.tensor) {
    return gate_text(*tape.tensor_node(n.index).op);
  }
  const Gate g = detail::scalar_gate(tape.scalar_op(n.index));
  return g == Gate::scales ? "" : gate_name(g);
}

std::string node_json(Tape& tape, NodeId n, const std::map<std::string, int>& uses,
                      const HtmlOptions& opt) {
  const auto ins = inputs_of(tape, n);
  std::string kind = "computed", shape = "[]", dtype = "f64", scope;
  bool wants = true;
  if (!n.tensor) {
    const ScalarOp op = tape.scalar_op(n.index);
    if (op == ScalarOp::leaf) kind = "variable";
    if (op == ScalarOp::constant) kind = "constant", wants = false;
  } else {
    const TensorNode& t = tape.tensor_node(n.index);
    wants = t.requires_grad;
    if (ins.empty()) kind = wants ? "variable" : "data";
    dtype = dtype_name(t.dtype);
    shape = "[";
    for (int a = 0; a < t.shape.rank(); ++a) shape += fmt::format("{}{}", a ? "," : "", t.shape[a]);
    shape += "]";
    if (t.scalar_out != kNone) shape = "[]";
    if (t.scope != kNone) scope = tape.scope_names()[t.scope];
  }
  std::string name;
  if (const std::string* l = tape.label(n.kind(), n.index))
    name = *l;
  else if (n.tensor && tape.tensor_node(n.index).label)
    name = tape.tensor_node(n.index).label;
  const auto vals = node_values(tape, n);
  const auto grads = wants ? node_grads(tape, n) : std::vector<double>{};
  const auto limit = static_cast<std::size_t>(std::max(opt.max_values, 1));
  std::string inputs = "[", locals = "[";
  for (std::size_t k = 0; k < ins.size(); ++k) {
    if (k) inputs += ',';
    inputs += json_string(ins[k].from.str());
    if (!n.tensor) {
      const ScalarEdges& se = tape.scalar_edges(n.index);
      if (k) locals += ',';
      locals += json_number(ins[k].slot == 0 ? se.da : se.db);
    }
  }
  inputs += "]", locals += "]";
  const auto u = uses.find(n.str());
  return fmt::format(
      "{{\"id\":{},\"op\":{},\"name\":{},\"kind\":{},\"tensor\":{},\"shape\":{},\"dtype\":{},"
      "\"scope\":{},\"site\":{},\"gate\":{},\"uses\":{},\"inputs\":{},\"locals\":{},"
      "\"value\":{},\"value_summary\":{},\"grad\":{},\"grad_summary\":{}}}",
      json_string(n.str()), json_string(op_name(tape, n)), json_string(name), json_string(kind),
      n.tensor ? "true" : "false", shape, json_string(dtype), json_string(scope),
      json_string(tape.origin(n.kind(), n.index)), json_string(gate_of(tape, n)),
      u == uses.end() ? 0 : u->second, inputs, locals,
      vals.size() <= limit ? json_array(vals) : "null", json_summary(vals),
      !wants ? "null" : (grads.size() <= limit ? json_array(grads) : "null"),
      wants ? json_summary(grads) : "null");
}

std::string lines_json(const std::vector<std::pair<NodeId, std::string>>& lines) {
  std::string s = "[";
  for (std::size_t i = 0; i < lines.size(); ++i)
    s += fmt::format("{}{{\"node\":{},\"text\":{}}}", i ? "," : "",
                     json_string(lines[i].first.str()), json_string(lines[i].second));
  return s + "]";
}

// The data block of one explorer: nodes, the forward lines, and the backward
// sweep as steps, each the lines of one swept node.
std::string data_json(Tape& tape, NodeId root, const std::string& title, const HtmlOptions& opt) {
  const SweepTrace tr = describe_sweeps(tape, root);
  const auto nodes = ancestors(tape, root);
  std::map<std::string, int> uses;
  for (const NodeId& n : nodes)
    for (const auto& e : inputs_of(tape, n)) ++uses[e.from.str()];
  std::string s = fmt::format("{{\"title\":{},\"root\":{},\"nodes\":[", json_string(title),
                              json_string(root.str()));
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    s += i ? ",\n" : "\n";
    s += node_json(tape, nodes[i], uses, opt);
  }
  s += "],\n\"forward\":" + lines_json(tr.forward);
  s += ",\n\"seed\":" + json_string(tr.seed);
  s += ",\n\"finals\":" + lines_json(tr.finals);
  // What the whole tape holds (not only the nodes behind the root).
  const TapeMemory mem = tape.memory();
  s += fmt::format(",\n\"memory\":{{\"in_use\":{},\"held\":{},\"peak\":{},\"nodes_by_op\":{{",
                   mem.in_use(), mem.held(), mem.peak_bytes);
  for (std::size_t i = 0; i < mem.nodes_by_op.size(); ++i)
    s += fmt::format("{}{}:{}", i ? "," : "", json_string(mem.nodes_by_op[i].first),
                     mem.nodes_by_op[i].second);
  s += "}}";
  s += ",\n\"steps\":[";
  const auto limit = static_cast<std::size_t>(std::max(opt.max_values, 1));
  for (std::size_t i = 0; i < tr.backward.size(); ++i) {
    const SweepStep& st = tr.backward[i];
    s += fmt::format("{}\n{{\"node\":{},\"lines\":[", i ? "," : "", json_string(st.node.str()));
    for (std::size_t k = 0; k < st.lines.size(); ++k) {
      const SweepLine& l = st.lines[k];
      s += fmt::format(
          "{}{{\"from\":{},\"edge\":{},\"text\":{},\"carried\":{}}}", k ? "," : "",
          json_string(l.from.str()), json_string(fmt::format("e_{}_{}", st.node.str(), l.edge)),
          json_string(l.text), l.carried.size() <= limit ? json_array(l.carried) : "null");
    }
    s += "]}";
  }
  return s + "]}";
}

// Graphviz's SVG from the <svg> element on (no XML prolog or DOCTYPE, which
// do not belong inside HTML).
std::string inline_svg(const std::string& svg) {
  const auto at = svg.find("<svg");
  if (at == std::string::npos) throw Error("graphviz returned no <svg> element");
  std::string s = svg.substr(at);
  // Comments Graphviz writes carry labels verbatim; drop them.
  for (auto c = s.find("<!--"); c != std::string::npos; c = s.find("<!--", c)) {
    const auto e = s.find("-->", c);
    if (e == std::string::npos) break;
    s.erase(c, e + 3 - c);
  }
  return s;
}

}  // namespace

std::string explorer_fragment(Tape& tape, NodeId root, const HtmlOptions& opt) {
  DotOptions dot;
  dot.font = "DejaVu Sans";
  dot.svg_ids = true;
  const std::string svg = render_svg(build_dot(tape, root, dot));
  return fmt::format(
      "<div class=\"tg-explorer\">\n"
      "<div class=\"tg-toolbar\">"
      "<button class=\"tg-reset\" title=\"back to the start (Home)\">reset</button>"
      "<button class=\"tg-prev\" title=\"previous step (&#x2190;)\">&#x25C0; prev</button>"
      "<button class=\"tg-play\" title=\"play / pause (space)\">&#x25B6; play</button>"
      "<button class=\"tg-next\" title=\"next step (&#x2192;)\">next &#x25B6;</button>"
      "<span class=\"tg-counter\"></span>"
      "<button class=\"tg-fit\" title=\"fit the graph to the pane\">fit</button>"
      "<span class=\"tg-legend\">add <b>distributes</b> &middot; mul <b>switches</b> &middot; "
      "a fan-out <b>adds up</b> &middot; max, min and relu <b>route</b> &middot; "
      "<i>grad ?</i> not yet computed</span>"
      "</div>\n"
      "<div class=\"tg-main\">\n<div class=\"tg-graph\">{}</div>\n"
      "<div class=\"tg-side\">"
      "<h3>this step</h3><div class=\"tg-step-node\"></div><pre class=\"tg-step-arith\"></pre>"
      "<h3>node</h3><div class=\"tg-info\">hover or click a node</div>"
      "<h3>trace</h3><pre class=\"tg-trace\"></pre>"
      "<h3>tape memory</h3><pre class=\"tg-memory\">{}</pre>"
      "</div>\n</div>\n"
      "<script type=\"application/json\" class=\"tg-data\">{}</script>\n"
      "</div>\n",
      inline_svg(svg), html_escape(tape.memory().str()), data_json(tape, root, opt.title, opt));
}

std::string html_page(const std::string& title, const std::string& body,
                      const std::string& extra_head) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{}</title>\n<style>\n{}</style>\n{}<script>\n{}</script>\n</head>\n<body>\n"
      "<h1>{}</h1>\n{}</body>\n</html>\n",
      html_escape(title), kExplorerCss, extra_head, kExplorerJs, html_escape(title), body);
}

}  // namespace detail

namespace {
std::string page_of(Tape& tape, NodeId root, const HtmlOptions& opt) {
  const std::string title = opt.title.empty() ? "tapegrad: " + root.str() : opt.title;
  HtmlOptions o = opt;
  o.title = title;
  return detail::html_page(title, detail::explorer_fragment(tape, root, o));
}
}  // namespace

std::string to_html(const Scalar& root, const HtmlOptions& opt) {
  return page_of(root.checked("to_html"), {false, root.index()}, opt);
}
std::string to_html(const Tensor& root, const HtmlOptions& opt) {
  return page_of(root.checked("to_html"), {true, root.index()}, opt);
}
void write_html(const Scalar& root, const std::string& path, const HtmlOptions& opt) {
  detail::write_file_atomic(path, to_html(root, opt));
}
void write_html(const Tensor& root, const std::string& path, const HtmlOptions& opt) {
  detail::write_file_atomic(path, to_html(root, opt));
}

}  // namespace tapegrad
