#pragma once
// Your own functions on the tape.
//
// A ScalarFunction is a function of one number that you define by its value
// and its derivatives. It works on Scalar, on Real and element-wise on
// Tensor (float32 and float64), records one node that carries your
// function's name (in DOT, traces, the explorer and errors), replays, and
// goes to second order when you give the second derivative:
//
//   const tg::ScalarFunction softplus("softplus", {
//       .value = [](double x) { return std::log1p(std::exp(x)); },
//       .derivative = [](double x, double) { return 1 / (1 + std::exp(-x)); },
//       .second = [](double x, double) { double s = 1 / (1 + std::exp(-x)); return s * (1 - s); },
//   });
//   tg::Scalar y = softplus(x);
//
// An ExternalFunction is a black box from tensors to a tensor (a linear
// solve, an ODE integrator, a call into another library): you give its
// forward, and its derivative as a vector-Jacobian product (and optionally a
// Jacobian-vector product for forward mode). It sits on the tape as one node,
// the backward sweep calls your VJP, replay re-runs your forward, and a
// forward-mode or second-order request that needs a rule you did not give
// throws, naming the function.
//
// Both check against finite differences like built-in ops (tg::gradcheck,
// and register_check() for the op registry). docs/new-op.md shows each.
// Functions are registered for the life of the program (a tape may refer to
// one after its object is gone); at most 4096 of each kind.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/real.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

struct ScalarFunctionRules {
  std::function<double(double x)> value;
  // dy/dx at x, given y = value(x).
  std::function<double(double x, double y)> derivative;
  // d2y/dx2 at x, given y; optional (without it, forward-over-reverse
  // requests through the function throw, naming it).
  std::function<double(double x, double y)> second = nullptr;
};

class ScalarFunction {
 public:
  ScalarFunction(std::string name, ScalarFunctionRules rules);

  Scalar operator()(const Scalar& x, Site where = Site::current()) const;
  template <detail::RealOne A>
  Real operator()(A&& a, Site where = Site::current()) const {
    return Real((*this)(detail::materialize(a), where));
  }
  Tensor operator()(const Tensor& x, Site where = Site::current()) const;
  // The plain function, for doubles.
  double operator()(double x) const;

  const std::string& name() const;
  std::uint32_t id() const { return id_; }
  // Adds checks of this function to the op registry (op_check_cases():
  // what `tapegrad gradcheck` runs), on Scalar and on a tensor, with inputs
  // drawn from [lo, hi).
  void register_check(double lo, double hi) const;

 private:
  std::uint32_t id_;
};

struct ExternalFunctionRules {
  using Inputs = std::span<const std::span<const double>>;
  // y = f(x0, x1, ...): each input's values, row-major, as float64.
  std::function<void(Inputs x, std::span<double> y)> forward;
  // x_bar_k += (dy/dx_k)^T y_bar for every input k (x_bar holds one span per
  // input, to add into).
  std::function<void(Inputs x, std::span<const double> y, std::span<const double> y_bar,
                     std::span<const std::span<double>> x_bar)>
      vjp;
  // y_dot = sum_k (dy/dx_k) x_dot_k; optional (forward mode, Hessians).
  std::function<void(Inputs x, std::span<const double> y, Inputs x_dot, std::span<double> y_dot)>
      jvp = nullptr;
};

class ExternalFunction {
 public:
  ExternalFunction(std::string name, ExternalFunctionRules rules);

  // One node: y of shape `out` from up to three tensor inputs (float64 or
  // float32; the output takes the first input's dtype).
  Tensor operator()(std::initializer_list<Tensor> inputs, const Shape& out,
                    Site where = Site::current()) const;
  // On Scalars: n inputs, `outputs` results. The box sees them as one
  // input of n values (gathered into one float64 tensor, and its output read
  // back out, around the one node of the box).
  std::vector<Scalar> operator()(std::span<const Scalar> inputs, std::size_t outputs,
                                 Site where = Site::current()) const;

  const std::string& name() const;

 private:
  std::uint32_t id_;
};

namespace detail {
// The name of the user function a `custom` scalar node calls (its number
// slot holds the function's id).
const std::string& user_function_name(const Tape& tape, std::uint32_t node);
// The value, derivative (given y) and value with partial of the user
// function with that id at x; each throws for an id that names no function.
double user_function_value(double id_slot, double x);
double user_function_derivative(double id_slot, double x, double y);
Partials user_function_first(double id_slot, double x);
// Its second derivative at x, given y; throws naming the function when it
// has none.
double user_function_second(double id_slot, double x, double y);
}  // namespace detail

}  // namespace tapegrad
