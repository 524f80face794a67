#pragma once
// Beyond the gradient: forward mode (JVP), vector-Jacobian products,
// Jacobians, Hessian-vector products and Hessians, all as sweeps over the
// tape that recording already wrote.
//
//   forward (tangent) sweep, in creation order:  t[out] = sum partial * t[in]
//   second-order sweep, in reverse:   h[in] += partial * h[out]
//                                            + g[out] * (second partials . t)
//
// where g is the ordinary adjoint and h its tangent along the direction v:
// after the second sweep h at the inputs is H v (forward-over-reverse). The
// first-order sweep is untouched; the extra columns (t, h) exist only while
// one of these functions runs.
//
// Inputs and outputs are Scalars or Tensors (a Ref is either); vectors are
// flattened: the inputs' elements one after the other, each tensor row-major.
//
//   tg::Tape tape;
//   tg::Scalar x = tape.variable(1.5), y = tape.variable(2);
//   tg::Scalar f = tg::pow(1 - x, 2) + 100 * tg::pow(y - x * x, 2);
//   std::vector<double> H = tg::hessian(f, {x, y});   // {1902, -600, -600, 200}
#include <cstdint>
#include <span>
#include <vector>

#include "tapegrad/tensor.hpp"

namespace tapegrad {

// A Scalar or a Tensor: an input or an output of the functions below.
class Ref {
 public:
  Ref(const Scalar& s) : scalar_(s) {}  // NOLINT: implicit on purpose
  Ref(const Tensor& t) : tensor_(t), is_tensor_(true) {}
  bool is_tensor() const { return is_tensor_; }
  Tape& tape() const { return is_tensor_ ? tensor_.tape() : scalar_.tape(); }
  std::uint32_t index() const { return is_tensor_ ? tensor_.index() : scalar_.index(); }
  std::int64_t size() const { return is_tensor_ ? tensor_.numel() : 1; }
  const Scalar& scalar() const { return scalar_; }
  const Tensor& tensor() const { return tensor_; }

 private:
  Scalar scalar_;
  Tensor tensor_;
  bool is_tensor_ = false;
};

// The tangents (directional derivatives) of the outputs along v: J v, with
// v of size sum(inputs' sizes) and the result of size sum(outputs' sizes).
// Inputs are leaves that take gradients (variables, parameters).
std::vector<double> jvp(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                        std::span<const double> v);
// u^T J: the gradient of sum_k u_k out_k with respect to the inputs. Leaves
// the tape's gradients as backward would.
std::vector<double> vjp(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                        std::span<const double> u);

enum class JacobianMode {
  automatic,  // forward when there are fewer inputs than outputs, else reverse
  reverse,    // one reverse sweep per output element
  forward,    // one tangent sweep per input element
};
// The Jacobian, row-major: rows are output elements, columns input elements.
std::vector<double> jacobian(const std::vector<Ref>& outputs, const std::vector<Ref>& inputs,
                             JacobianMode mode = JacobianMode::automatic);

// H v for a one-element output (a Scalar or a loss Tensor): the tangent of
// the gradient along v. Leaves the tape's gradients as backward(output) would.
std::vector<double> hvp(const Ref& output, const std::vector<Ref>& inputs,
                        std::span<const double> v);
// The dense Hessian (n x n, row-major), by n Hessian-vector products that
// share one first-order sweep. Symmetric up to rounding.
std::vector<double> hessian(const Ref& output, const std::vector<Ref>& inputs);

// The columns of a higher-order sweep, as op rules see them. A tensor node's
// tangent is a buffer of its dtype and shape (zeros when no tangent reached
// it); during the second-order sweep the tape's gradient buffers hold the
// adjoint tangents h, and first_grad() gives the ordinary adjoint g set
// aside by the first-order sweep.
class Tangents {
 public:
  explicit Tangents(Tape& tape);
  ~Tangents();
  Tangents(const Tangents&) = delete;
  Tangents& operator=(const Tangents&) = delete;

  // Whether tensor node t has a tangent (else it is zero).
  bool has(std::uint32_t t) const { return t < tt_.size() && tt_[t] != nullptr; }
  // The tangent of tensor node t: its buffer, or a buffer of zeros.
  template <class T>
  const T* of(std::uint32_t t) const {
    return static_cast<const T*>(has(t) ? tt_[t] : zeros_.data());
  }
  // A fresh, uninitialised buffer that becomes t's tangent (the JVP rule
  // writes every element).
  template <class T>
  T* out(std::uint32_t t) {
    return static_cast<T*>(make(t));
  }
  void* make(std::uint32_t t);
  // Scalar tangents.
  double scalar(std::uint32_t s) const { return st_[s]; }
  void set_scalar(std::uint32_t s, double v) { st_[s] = v; }
  // The first-order adjoint of tensor node t (null: zero), and of scalar s.
  template <class T>
  const T* first_grad(std::uint32_t t) const {
    return t < g1_.size() ? static_cast<const T*>(g1_[t]) : nullptr;
  }
  double first_scalar_grad(std::uint32_t s) const { return s < sg1_.size() ? sg1_[s] : 0.0; }
  // Whether any tensor or scalar input of tensor node t has a tangent.
  bool any_input(std::uint32_t t) const;

 private:
  friend struct detail::HigherOrder;
  Tape& tape_;
  std::vector<void*> tt_;
  std::vector<Buffer> owned_;
  Buffer zeros_;
  std::vector<double> st_;
  std::vector<const void*> g1_;
  std::vector<double> sg1_;
  struct Aside {  // a tensor node's first-order gradient, set aside
    Buffer buf;
    void* grad = nullptr;
    PendingGrad* pending = nullptr;
  };
  std::vector<Aside> aside_;
  bool set_aside_ = false;
};

}  // namespace tapegrad
