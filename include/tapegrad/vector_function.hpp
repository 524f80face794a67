#pragma once
// A recorded vector function F: R^n -> R^m, compiled once into a compact
// program that any number of threads evaluate at new points at the same
// time: values, J v, u^T J, the dense Jacobian, and second order for a
// weighted sum of the outputs w^T F (a Lagrangian: weights given per call).
// Sparse Jacobians and Hessians on top of it are in sparse.hpp.
//
//   auto F = tg::VectorFunction::record(x0, [](std::span<const tg::Scalar> x) {
//     return std::vector<tg::Scalar>{x[0] * x[1], tg::sin(x[0]) + x[2]};
//   });
//   std::vector<double> J(F.outputs() * F.inputs());
//   F.jacobian(x, J);                        // row-major m x n
//
// Every method is const and keeps its working arrays in a per-thread
// workspace, so one VectorFunction serves many threads with no locking
// (docs/design.md, Note [one program, many workspaces]). Comparisons recorded
// through the library are checked on every call, as in Function: a flip
// throws BranchChanged naming the comparison and its source line.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tapegrad/replay.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tape_scope.hpp"

namespace tapegrad {

namespace detail {
struct VProgram;
}

class VectorFunction {
 public:
  // Compiles outputs as functions of inputs (variables of `tape`); the tape
  // is read here only, and may be cleared afterwards. Nodes that do not
  // reach an output are dropped and nodes that do not depend on an input
  // become numbers. Scalar nodes only: an output that depends on a tensor
  // node is an error naming it.
  VectorFunction(const Tape& tape, std::span<const Scalar> inputs, std::span<const Scalar> outputs);
  // Records f on a tape of its own, the current tape while f runs: f gets
  // n variables at x0 and returns its outputs (any container of Scalar).
  template <class F>
  static VectorFunction record(std::span<const double> x0, F&& f) {
    Tape tape;
    TapeScope scope(tape);
    std::vector<Scalar> in;
    in.reserve(x0.size());
    for (double v : x0) in.push_back(tape.variable(v));
    const auto out = f(std::span<const Scalar>(in));
    std::vector<Scalar> outs(std::begin(out), std::end(out));
    return VectorFunction(tape, in, outs);
  }

  VectorFunction(VectorFunction&&) noexcept;
  VectorFunction& operator=(VectorFunction&&) noexcept;
  ~VectorFunction();

  std::size_t inputs() const;
  std::size_t outputs() const;
  // Operations in the compiled program (after dropping and folding).
  std::size_t operations() const;

  // F(x) into y (size outputs()).
  void values(std::span<const double> x, std::span<double> y) const;
  // J v into jv (forward mode, one sweep); F(x) into y when not empty.
  void jvp(std::span<const double> x, std::span<const double> v, std::span<double> jv,
           std::span<double> y = {}) const;
  // u^T J into uj (reverse mode, one sweep); F(x) into y when not empty.
  void vjp(std::span<const double> x, std::span<const double> u, std::span<double> uj,
           std::span<double> y = {}) const;
  // The dense Jacobian, row-major outputs() x inputs(), by forward sweeps
  // when inputs() <= outputs() and reverse sweeps otherwise, each carrying
  // up to 16 directions.
  void jacobian(std::span<const double> x, std::span<double> J, std::span<double> y = {}) const;
  // (d^2 w^T F / dx^2) v into hv, and the gradient of w^T F into grad when
  // not empty (forward over reverse, one pass).
  void hvp(std::span<const double> x, std::span<const double> w, std::span<const double> v,
           std::span<double> hv, std::span<double> grad = {}) const;
  // The dense Hessian of w^T F, inputs() x inputs(), row-major.
  void hessian(std::span<const double> x, std::span<const double> w, std::span<double> H) const;

  const detail::VProgram& program() const { return *prog_; }

 private:
  std::unique_ptr<detail::VProgram> prog_;
};

}  // namespace tapegrad
