#pragma once
// Sparse Jacobians and Hessians of a VectorFunction (vector_function.hpp).
//
//   tg::SparseJacobian J(F);          // pattern and coloring, once
//   J.evaluate(x, values);            // one compressed sweep per call
//   // values[k] is the entry at (J.rows()[k], J.cols()[k]), in the same
//   // order at every call; J.pattern() has it as CSR.
//
//   tg::SparseHessian H(F);           // lower triangle of d^2 (w^T F) / dx^2
//   H.evaluate(x, w, values);
//
// Patterns come from the tape by sweeping index sets: an output's row holds
// every input it depends on through any op, and the Hessian's pattern every
// pair of inputs that meet in a nonlinear op. Both are conservative: an
// entry in the pattern may evaluate to 0 at some point, but no nonzero is
// ever missing (docs/design.md, Note [conservative patterns]). Columns
// (or rows, whichever needs fewer sweeps) are grouped so that no two in a
// group share a nonzero; the Hessian uses a star coloring, so every entry
// is read off one Hessian-vector product without solving anything.
// evaluate() is const and thread-safe (one workspace per thread). Both keep
// a pointer to the function's compiled program: the VectorFunction may be
// moved, but must outlive them.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/vector_function.hpp"

namespace tapegrad {

// A rows x cols pattern in compressed sparse row form: the columns of row r
// are col[row_start[r] .. row_start[r + 1]), ascending.
struct SparsityPattern {
  std::uint32_t rows = 0, cols = 0;
  std::vector<std::uint32_t> row_start{0};
  std::vector<std::uint32_t> col;

  std::size_t nnz() const { return col.size(); }
  bool contains(std::uint32_t r, std::uint32_t c) const;
  // The transpose (columns' rows), also CSR.
  SparsityPattern transposed() const;
  // Rows of '.' and '#' (at most 120 x 120; larger patterns are shown in
  // blocks, a block marked where any entry of it is).
  std::string to_text() const;
  // An SVG picture, one square per entry (blocks beyond 400 x 400).
  std::string to_svg() const;
};

// Which inputs each output depends on (outputs() x inputs()).
SparsityPattern jacobian_pattern(const VectorFunction& f);
// Which pairs of inputs interact nonlinearly in any output (inputs() x
// inputs(), symmetric, both triangles).
SparsityPattern hessian_pattern(const VectorFunction& f);

// A coloring: color[v] in [0, count).
struct Coloring {
  std::vector<std::uint32_t> color;
  std::uint32_t count = 0;
};
// Columns of p such that no two of one color have an entry in the same row
// (greedy, largest first).
Coloring color_columns(const SparsityPattern& p);
// A star coloring of the symmetric pattern p's adjacency graph: a proper
// coloring in which every path on four vertices uses at least three colors,
// so each entry of the matrix can be read directly from the products with
// the colors' sums of unit vectors (greedy, largest first).
Coloring star_coloring(const SparsityPattern& p);
// Whether each entry (i, j) of symmetric p can be read directly: j's color
// appears only once among row i's columns, or i's among row j's.
bool recoverable(const SparsityPattern& p, const Coloring& c);

class SparseJacobian {
 public:
  explicit SparseJacobian(const VectorFunction& f);
  // Row-major entries; rows()[k], cols()[k] is the position of values[k].
  const SparsityPattern& pattern() const { return pattern_; }
  std::span<const std::uint32_t> rows() const { return rows_; }
  std::span<const std::uint32_t> cols() const { return pattern_.col; }
  std::size_t nnz() const { return pattern_.nnz(); }
  // The number of sweeps per evaluation, and their direction.
  std::uint32_t colors() const { return coloring_.count; }
  bool by_rows() const { return by_rows_; }
  const Coloring& coloring() const { return coloring_; }
  // The values of the nonzeros at x (size nnz()), and F(x) into y when not
  // empty.
  void evaluate(std::span<const double> x, std::span<double> values,
                std::span<double> y = {}) const;

 private:
  const detail::VProgram* prog_;  // the function's program: survives moving the function
  SparsityPattern pattern_;
  std::vector<std::uint32_t> rows_;
  Coloring coloring_;
  bool by_rows_ = false;
};

class SparseHessian {
 public:
  explicit SparseHessian(const VectorFunction& f);
  // The lower triangle (row >= col), row-major.
  std::span<const std::uint32_t> rows() const { return rows_; }
  std::span<const std::uint32_t> cols() const { return cols_; }
  std::size_t nnz() const { return rows_.size(); }
  const SparsityPattern& pattern() const { return full_; }  // both triangles
  std::uint32_t colors() const { return coloring_.count; }
  const Coloring& coloring() const { return coloring_; }
  // The lower triangle of the Hessian of w^T F at x (size nnz()); the
  // gradient of w^T F into grad when not empty.
  void evaluate(std::span<const double> x, std::span<const double> w, std::span<double> values,
                std::span<double> grad = {}) const;

 private:
  const detail::VProgram* prog_;  // the function's program: survives moving the function
  SparsityPattern full_;
  std::vector<std::uint32_t> rows_, cols_;
  std::vector<std::uint32_t> from_;  // where values[k] is read: slot * colors + color
  Coloring coloring_;
};

}  // namespace tapegrad
