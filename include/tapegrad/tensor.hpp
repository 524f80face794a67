#pragma once
// Tensor: a 16-byte handle {tape, index, generation} to a tensor node:
// contiguous row-major float32 or float64 data of rank 0 to kMaxRank.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "tapegrad/scalar.hpp"
#include "tapegrad/tape.hpp"

namespace tapegrad {

struct TensorOptions {
  DType dtype = DType::f64;
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // empty: any use throws
  Tensor(Tape& tape, std::uint32_t index) : tape_(&tape), index_(index), gen_(tape.generation()) {
    // Every op returns through here once its value is computed.
    if (tape.anomaly_enabled()) [[unlikely]]
      tape.check_tensor_forward(index);
  }

  // False for a default-constructed handle.
  bool defined() const { return tape_ != nullptr; }
  // By value: a reference into the tape would dangle once the next node is
  // recorded (the node list may grow), as in zeros(x.shape()).
  Shape shape() const { return node().shape; }
  DType dtype() const { return node().dtype; }
  std::int64_t numel() const { return shape().numel(); }
  int rank() const { return shape().rank(); }
  bool requires_grad() const { return node().requires_grad; }

  // Values and gradients as float64 copies, row-major.
  std::vector<double> values() const;
  std::vector<double> grads() const;  // zeros where no gradient reached
  double value(std::int64_t flat_index) const;
  double grad(std::int64_t flat_index) const;
  // Direct views in the tensor's own type; T must match dtype().
  template <class T>
  std::span<const T> data() const;
  template <class T>
  std::span<T> mutable_data();  // leaves only: for loading data and updates

  // The one element of a one-element tensor as a differentiable Scalar.
  Scalar item(Site where = Site::current()) const;
  // Names the node for DOT graphs and traces; returns *this.
  Tensor& named(std::string name);
  void backward() const;
  void backward(const Tensor& seed) const;

  Tape& tape() const { return checked(); }
  std::uint32_t index() const { return index_; }
  std::uint32_t generation() const { return gen_; }
  // Valid until the next node is recorded on the tape.
  const TensorNode& node() const { return checked().tensor_node(index_); }

  Tape& checked(const char* what = "Tensor") const {
    if (!tape_) [[unlikely]]
      throw_empty(what);
    tape_->check_tensor(index_, gen_, what);
    return *tape_;
  }

 private:
  [[noreturn]] static void throw_empty(const char* what);
  Tape* tape_ = nullptr;
  std::uint32_t index_ = 0;
  std::uint32_t gen_ = 0;
};

// ---- creation (on the current tape) ----
Tensor tensor(std::span<const double> values, const Shape& shape, TensorOptions opt = {},
              Site where = Site::current());
Tensor tensor(std::initializer_list<double> values, const Shape& shape, TensorOptions opt = {},
              Site where = Site::current());
// A 1-D tensor from a list, and a 2-D one from nested lists (rows).
Tensor tensor(std::initializer_list<double> values, TensorOptions opt = {},
              Site where = Site::current());
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions opt = {},
              Site where = Site::current());
Tensor zeros(const Shape& shape, TensorOptions opt = {}, Site where = Site::current());
Tensor ones(const Shape& shape, TensorOptions opt = {}, Site where = Site::current());
Tensor full(const Shape& shape, double value, TensorOptions opt = {}, Site where = Site::current());
// Normal(0, stddev) or uniform [lo, hi) from a seeded generator: the same seed
// gives the same tensor on every machine.
Tensor randn(const Shape& shape, std::uint64_t seed, double stddev = 1.0, TensorOptions opt = {},
             Site where = Site::current());
Tensor uniform(const Shape& shape, double lo, double hi, std::uint64_t seed, TensorOptions opt = {},
               Site where = Site::current());
// A leaf whose value and gradient live in caller-owned memory (e.g. a model
// parameter): backward accumulates into `grad` directly. Both must hold
// shape.numel() elements of `dtype`; grad may be null for a constant.
Tensor external(const Shape& shape, DType dtype, void* value, void* grad,
                const char* label = nullptr, Site where = Site::current());
// A constant with x's values: gradients stop here.
Tensor detach(const Tensor& x, Site where = Site::current());

}  // namespace tapegrad
