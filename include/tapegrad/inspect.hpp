#pragma once
// Seeing the gradients: DOT graphs of how they flow, flat-code traces of the
// two sweeps, and a per-node check that names the first op whose backward
// disagrees with its own forward.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/gradcheck.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

// A node of a tape: "s12" is scalar node 12, "t3" tensor node 3.
struct NodeId {
  bool tensor = false;
  std::uint32_t index = 0;
  NodeKind kind() const { return tensor ? NodeKind::tensor : NodeKind::scalar; }
  std::string str() const {
    std::string s(1, tensor ? 't' : 's');
    s += std::to_string(index);
    return s;
  }
  bool operator==(const NodeId&) const = default;
};

struct DotOptions {
  std::string title{};
  int max_entries = 6;              // tensors with at most this many elements show them all
  bool collapse_scopes = false;     // draw each named scope (an MLP layer) as one box
  double vanishing = 1e-8;          // |gradient| below this is flagged as vanishing
  double exploding = 1e3;           // |gradient| above this is flagged as exploding
  std::vector<NodeId> highlight{};  // nodes drawn in red (e.g. a failed node check)
  std::string font = "Helvetica";   // Graphviz measures labels in this font
  bool svg_ids = false;             // SVG ids: nodes "s3"/"t2", edges "e_<to>_<k>" (k-th input)
};

// DOT text of the graph behind `root`: one node per tape node (op, value,
// gradient; shape and min/max/norm for tensors), edges from inputs to outputs
// labelled with the gradient each carries back. Node ids come from tape
// indices, so the same program gives the same text byte for byte.
std::string to_dot(const Scalar& root, const DotOptions& opt = {});
std::string to_dot(const Tensor& root, const DotOptions& opt = {});

// Writes `dot` to `path`: as text for .dot/.gv, else rendered through
// Graphviz's libraries, the format taken from the extension (.svg, .png,
// .pdf). If rendering fails (say a missing plugin), the DOT text is written to
// path + ".dot" and the error says so.
void write_graph(const std::string& dot, const std::string& path);

struct HtmlOptions {
  std::string title{};    // the page's heading; "tapegrad: <root>" when empty
  int max_values = 1024;  // tensors up to this many elements carry every number (heat maps);
                          // larger ones carry min, max, mean and norm
};

// One self-contained HTML page (no network, works from file://) that shows
// the graph behind `root` and steps through its backward sweep: the Graphviz
// layout inlined as SVG (node groups with ids "s3"/"t2" as in the trace), the
// numbers of every node as JSON, and a script of our own. Each step
// highlights the node swept and the edges it sends gradients down, and shows
// that step's lines of trace(root); gradients not yet reached show as "?".
std::string to_html(const Scalar& root, const HtmlOptions& opt = {});
std::string to_html(const Tensor& root, const HtmlOptions& opt = {});
// Writes to_html to `path` (through a temporary file renamed into place).
void write_html(const Scalar& root, const std::string& path, const HtmlOptions& opt = {});
void write_html(const Tensor& root, const std::string& path, const HtmlOptions& opt = {});

// The forward and backward sweeps as flat code with the numbers, one line per
// edge, in the order the engine runs them, e.g.
//   grad_s2 += grad_s3 * 1 = 0.1966   (add: distributes)
std::string trace(const Scalar& root);
std::string trace(const Tensor& root);

struct NodeCheck {
  NodeId id;
  std::string op;
  std::string scope;   // the named scope (layer) it was created in, or ""
  std::string status;  // "pass", "FAIL", "kink" (not differentiable here), "skipped (...)"
  double max_abs_error = 0, max_rel_error = 0;
  std::string detail;  // input and element of the worst error
  std::string origin;  // "created at file:line (function)" when known (see Site)
};
struct NodeCheckResult {
  bool pass = true;
  std::vector<NodeCheck> nodes;  // in creation order
  const NodeCheck* first_failure() const;
  std::string str() const;  // one line per node
};
// For each node behind `root`, compares its own backward rule with central
// differences of its own forward at the recorded inputs (float64 nodes; others
// are skipped). A kink (a ReLU, max or abs decision flipping inside the step)
// is reported as "not differentiable here" rather than a failure.
NodeCheckResult check_nodes(const Scalar& root, const GradcheckOptions& opt = {});
NodeCheckResult check_nodes(const Tensor& root, const GradcheckOptions& opt = {});

}  // namespace tapegrad
