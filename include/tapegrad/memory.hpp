#pragma once
// What a tape holds: Tape::memory() (part of tape.hpp; include that).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace tapegrad {

struct TapeMemory {
  std::size_t scalar_nodes = 0, tensor_nodes = 0;
  // In use: scalar nodes (32 bytes each: edges and value) and their
  // adjoints (8 bytes each once a sweep ran); the value, gradient and saved
  // buffers of tensor nodes the tape owns (a parameter's caller-owned memory
  // is not the tape's).
  std::size_t scalar_bytes = 0, adjoint_bytes = 0, tensor_bytes = 0;
  // Held besides: the scalar arrays' spare capacity, and buffers kept in the
  // pool for reuse (the next step's nodes take them without allocating).
  std::size_t spare_bytes = 0, pool_bytes = 0;
  // The highest in_use() since the tape was made or reset_peak() was called.
  std::size_t peak_bytes = 0;
  // The budget set by set_memory_budget(), or 0 for none.
  std::size_t budget_bytes = 0;
  // Node counts by op name, most first.
  std::vector<std::pair<std::string, std::size_t>> nodes_by_op;

  std::size_t in_use() const { return scalar_bytes + adjoint_bytes + tensor_bytes; }
  std::size_t held() const { return in_use() + spare_bytes + pool_bytes; }
  // A few lines for people: totals, the parts, and the five commonest ops.
  std::string str() const;
};

// "1.50 MiB", "812 B": a byte count for people.
std::string format_bytes(std::size_t bytes);

}  // namespace tapegrad
