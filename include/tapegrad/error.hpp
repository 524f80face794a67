#pragma once
// Every failure tapegrad reports is a tapegrad::Error whose message names the
// operation, the values involved (shapes, indices, file names) and, where one
// exists, what to do about it.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace tapegrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which of a tape's two lists a node index refers to.
enum class NodeKind : std::uint8_t { scalar, tensor };

// A NaN or an infinity found by anomaly detection (tape.hpp). Besides the
// message, it says which node (scalar or tensor, by index) made the bad
// number, and what went wrong without the C++ line, so that a tool that
// builds graphs from its own language (the CLI's expressions) can point into
// that language instead.
class AnomalyError : public Error {
 public:
  AnomalyError(const std::string& message, std::string problem, NodeKind kind, std::uint32_t node)
      : Error(message), problem_(std::move(problem)), kind_(kind), node_(node) {}
  const std::string& problem() const { return problem_; }
  NodeKind kind() const { return kind_; }
  bool tensor() const { return kind_ == NodeKind::tensor; }
  std::uint32_t node() const { return node_; }

 private:
  std::string problem_;
  NodeKind kind_;
  std::uint32_t node_;
};

}  // namespace tapegrad
