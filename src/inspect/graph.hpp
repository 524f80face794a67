#pragma once
// Private: walking the graph behind a root, in creation order, and what each
// edge carries back.
#include <vector>

#include "tapegrad/inspect.hpp"

namespace tapegrad::detail {

// An input edge of a node.
struct InEdge {
  NodeId from;
  int slot;  // 0/1 for scalar a/b, k for tensor input k, -1 for a tensor's scalar input
};

std::vector<InEdge> inputs_of(const Tape& tape, NodeId n);
// Every node `root` depends on (itself included), in creation order.
std::vector<NodeId> ancestors(const Tape& tape, NodeId root);
// Input `slot` of scalar node s as text: "s3", or the plain number kept there.
std::string operand_str(const Tape& tape, std::uint32_t s, int slot);
// The op's display name (with any plain number operand: "mul(·, 2)").
std::string op_name(const Tape& tape, NodeId n);
bool is_binary(ScalarOp op);
// Gradient each input edge of tensor node t carries back (empty vectors where
// none), found by running t's backward rule alone into fresh buffers.
std::vector<std::vector<double>> tensor_edge_grads(Tape& tape, std::uint32_t t);
// A node's value and gradient as float64.
std::vector<double> node_values(const Tape& tape, NodeId n);
std::vector<double> node_grads(const Tape& tape, NodeId n);
std::string fmt_num(double v);

// The two sweeps as the trace prints them, kept apart by node and edge so
// that the HTML explorer steps through exactly the lines `trace` prints.
struct SweepLine {
  NodeId from;                  // the input whose gradient grows
  int edge;                     // position of that input in inputs_of(node)
  std::string text;             // the whole trace line
  std::vector<double> carried;  // what the edge carries back
};
struct SweepStep {
  NodeId node;  // the node being swept
  std::vector<SweepLine> lines;
};
struct SweepTrace {
  std::vector<std::pair<NodeId, std::string>> forward;  // one line per node, creation order
  std::string seed;                                     // "grad_s7 = 1   (seed)"
  std::vector<SweepStep> backward;                      // reverse order, nodes with lines only
  std::vector<std::pair<NodeId, std::string>> finals;   // the leaves' gradients
};
// The DOT text of to_dot.
std::string build_dot(Tape& tape, NodeId root, const DotOptions& opt);
// The SVG that Graphviz's dot layout makes of `dot`, rendered in process.
std::string render_svg(const std::string& dot);

SweepTrace describe_sweeps(Tape& tape, NodeId root);
std::string format_trace(const SweepTrace& t);

}  // namespace tapegrad::detail
