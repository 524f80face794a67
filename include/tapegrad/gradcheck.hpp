#pragma once
// Gradient checking: the analytic gradient from one backward sweep against
// central finite differences, in float64.
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct GradcheckInput {
  Shape shape;
  std::vector<double> values;  // row-major, shape.numel() of them
  std::string name;            // for the report; "x0", "x1", ... when empty
};

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // pass when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  // Above this many elements an input is checked along `directions` random
  // directions instead of element by element.
  std::int64_t max_elements = 4096;
  int directions = 8;
  std::uint64_t seed = 42;
};

struct GradcheckReport {
  std::string name;
  Shape shape;
  double max_abs_error = 0;
  double max_rel_error = 0;
  std::int64_t worst_index = -1;     // element (or direction) of the largest violation
  double analytic = 0, numeric = 0;  // at worst_index
  bool pass = true;
};

struct GradcheckResult {
  bool pass = true;
  std::vector<GradcheckReport> inputs;
  std::string str() const;  // a table, one line per input
};

using TensorFn = std::function<Tensor(std::span<const Tensor>)>;
using ScalarFn = std::function<Scalar(std::span<const Scalar>)>;

// f receives float64 leaves built from `inputs` on a private tape. A
// non-scalar output is reduced to sum(y * r) with a fixed random r, which
// checks every output's gradient at once.
GradcheckResult gradcheck(const TensorFn& f, const std::vector<GradcheckInput>& inputs,
                          const GradcheckOptions& opt = {});
GradcheckResult gradcheck(const ScalarFn& f, const std::vector<double>& inputs,
                          const GradcheckOptions& opt = {});

// The second-order check (higher.hpp), along `opt.directions` random
// directions v, one report row each:
//   "jvp"     J v from the tangent sweep against central differences of f;
//   "hvp"     H v of the objective (as above: y, or sum(y * r)) against
//             central differences of its gradient;
//   "adjoint" <u, J v> against <J^T u, v> for a random u: forward and
//             reverse mode agree (no finite differences involved).
GradcheckResult gradcheck_order2(const TensorFn& f, const std::vector<GradcheckInput>& inputs,
                                 const GradcheckOptions& opt = {});
GradcheckResult gradcheck_order2(const ScalarFn& f, const std::vector<double>& inputs,
                                 const GradcheckOptions& opt = {});

}  // namespace tapegrad
