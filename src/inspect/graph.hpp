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

}  // namespace tapegrad::detail
