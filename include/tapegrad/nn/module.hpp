#pragma once
// Modules: named parameters that live across training steps, and layers
// built from the engine's differentiable ops (no hand-written backprop here).
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/higher.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad::nn {

// A trainable tensor that outlives tapes: its value and gradient are owned
// here, and var() puts it on a tape as a leaf aliasing that memory, so
// backward accumulates straight into grad().
//
//   nn::Parameter w("w", {3, 2}, DType::f64);
//   w.set_values(...);  tg::Tensor leaf = w.var();  ...  w.grads();  w.zero_grad();
//
// The second half of the class serves the optimisers and the trainer (how
// the memory is laid out, outer-product gradients, replicas); a user who
// wants a parameter needs only the first.
class Parameter {
 public:
  Parameter(std::string name, const Shape& shape, DType dtype, bool stored_transposed = false);
  Parameter(const Parameter&) = delete;
  Parameter& operator=(const Parameter&) = delete;

  const std::string& name() const { return name_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  // A leaf on `tape` aliasing this parameter's memory.
  Tensor var(Tape& tape = current_tape(), Site where = Site::current());
  // Values as float64 (for inspection and tests), and setting them from float64.
  std::vector<double> values() const;
  std::vector<double> grads() const;
  void set_values(std::span<const double> v);
  // Zeroes the gradient lazily: the next backward overwrites it instead of
  // adding to it (no memset, no read), and the accessors see zeros until
  // then. (A pointer taken from grad() earlier still sees the old values
  // until an accessor or a backward writes the memory.)
  void zero_grad() {
    pending_.state = PendingGrad::State::kZero;
    for (Replica& r : replicas_) r.pending.state = PendingGrad::State::kZero;
  }
  // The memory itself, typed (T must be the dtype), in stored order (below).
  template <class T>
  std::span<T> value() {
    return {static_cast<T*>(check<T>(value_.data())), static_cast<std::size_t>(numel())};
  }
  template <class T>
  std::span<T> grad() {
    return {static_cast<T*>(check<T>(raw_grad())), static_cast<std::size_t>(numel())};
  }

  // ---- for optimisers and the trainer (docs/design.md, "nn") ----

  // Storage order. `stored_transposed`: a matrix kept in memory as its
  // transpose (Linear keeps a weight declared (Out, In) as (In, Out); see
  // WeightLayout). shape(), values(), grads(), set_values() and checkpoints
  // see the matrix as declared; value(), grad(), the raw pointers and var()
  // see the memory, of stored_shape().
  const Shape& stored_shape() const { return stored_shape_; }
  bool stored_transposed() const { return transposed_; }
  void stored_to_declared(const void* stored, void* declared) const;
  void declared_to_stored(const void* declared, void* stored) const;
  void* raw_value() { return value_.data(); }
  void* raw_grad() {
    settle_grad();
    return grad_.data();
  }
  // Where in a 4 KiB page an optimiser's k-th state buffer starts
  // (Buffer(bytes, page_offset); docs/design.md, Note [4K aliasing]).
  static constexpr std::size_t state_offset(std::size_t k) { return (2048 + 1024 * k) % 4096; }
  // The gradient's two factors when backward left it as an outer product
  // (see PendingGrad: element (r, c) is a[r] * b[c]), else null. Optimiser
  // updates read these instead of the written product.
  const PendingGrad* grad_factors() const {
    return pending_.state == PendingGrad::State::kOuter ? &pending_ : nullptr;
  }
  // Replicas (in-process data parallelism, TrainerOptions::replicas): while
  // a thread is inside a ReplicaScope for replica k > 0, var() gives its
  // leaves a gradient buffer of replica k's own, so k threads can run
  // backward over their shares of a batch at once. The sums are then folded
  // into grad() in three parts, the middle one safe to run on several
  // threads over disjoint element ranges:
  //   reduce_begin() (one thread), reduce_range(b, e) (any), reduce_end() (one).
  void set_replicas(int n);  // n >= 1; allocates n - 1 buffers, zeroed lazily
  int replicas() const { return static_cast<int>(replicas_.size()) + 1; }
  bool reduce_begin();  // false when no replica > 0 wrote a gradient
  void reduce_range(std::int64_t b, std::int64_t e);
  void reduce_end();

 private:
  // The value and the gradient start at different places in a page, apart
  // from the optimiser's state (Note [4K aliasing]).
  static constexpr std::size_t kValueOffset = 0, kGradOffset = 1024;
  struct Replica {
    Buffer grad;
    PendingGrad pending;  // never kept as factors
  };
  template <class T>
  void* check(void* p) const {
    if (dtype_of<T>() != dtype_) throw_dtype();
    return p;
  }
  [[noreturn]] void throw_dtype() const;
  void settle_grad() const {  // writes out a pending zero or product
    if (pending_.pending()) pending_.settle();
  }
  std::string name_;
  Shape shape_, stored_shape_;
  bool transposed_;
  DType dtype_;
  Buffer value_, grad_;
  mutable PendingGrad pending_;    // shared with this parameter's tape nodes
  std::deque<Replica> replicas_;   // replicas 1, 2, ...
  bool reduce_overwrite_ = false;  // set by reduce_begin: grad() held zeros
};

// Marks the calling thread as recording replica k (0: the parameters' own
// gradients) for its lifetime; see Parameter::set_replicas.
class ReplicaScope {
 public:
  explicit ReplicaScope(int k);
  ~ReplicaScope();
  ReplicaScope(const ReplicaScope&) = delete;
  ReplicaScope& operator=(const ReplicaScope&) = delete;

 private:
  int prev_;
};
// The calling thread's replica (0 outside any ReplicaScope).
int current_replica();

// Modules hold their parameters and refer to their children by address, so
// they are neither copied nor moved; hold them by value in place or by pointer.
class Module {
 public:
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual Tensor forward(const Tensor& x) = 0;
  // forward(x), with every node it records also attributed to the caller's
  // line (see CallSite), so an anomaly inside a layer names `model(x)`.
  Tensor operator()(const Tensor& x, Site where = Site::current()) {
    CallSite here(x.tape(), where);
    return forward(x);
  }

  // Every parameter of this module and its children, in registration order,
  // with dotted names ("layer0.weight").
  std::vector<std::pair<std::string, Parameter*>> named_parameters();
  std::vector<Parameter*> parameters();
  void zero_grad();
  std::int64_t parameter_count();
  const std::string& name() const { return name_; }

 protected:
  explicit Module(std::string name) : name_(std::move(name)) {}
  Parameter& register_parameter(const std::string& name, const Shape& shape, DType dtype,
                                bool stored_transposed = false);
  void register_module(Module& child) { children_.push_back(&child); }

 private:
  std::string name_;
  std::deque<Parameter> params_;  // deque: parameters never move
  std::vector<Module*> children_;
};

enum class Activation { identity, relu, leaky_relu, sigmoid, tanh };
Activation parse_activation(const std::string& name);  // throws listing the choices
const char* activation_name(Activation a);
Tensor apply(Activation a, const Tensor& x);

enum class Init { kaiming_uniform, xavier_uniform };

// How a Linear layer keeps its weight W, declared (out, in) either way:
//   out_in: in that order, and the layer records linear(x, W, b);
//   in_out: transposed, and the layer records affine(x, W^T, b).
// Same values, same gradients (up to the order of float sums), same
// checkpoints. in_out lets the forward product and the weight gradient skip
// a sparse input's zeros directly; out_in skips them in the forward product
// only through a transposed copy of W each step, but lets the input
// gradient skip the zeros of the gradient behind a ReLU (tapegrad::gemm).
enum class WeightLayout { out_in, in_out };

// y = x W^T + b with W (out, in) and b (out).
class Linear : public Module {
 public:
  Linear(std::string name, std::int64_t in, std::int64_t out, DType dtype = DType::f32,
         std::uint64_t seed = 0, Init init = Init::kaiming_uniform, bool bias = true,
         WeightLayout layout = WeightLayout::out_in);
  Tensor forward(const Tensor& x) override;
  Parameter& weight() { return *weight_; }
  Parameter* bias() { return bias_; }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  WeightLayout layout() const { return layout_; }

 private:
  std::int64_t in_, out_;
  WeightLayout layout_;
  Parameter* weight_;
  Parameter* bias_ = nullptr;
};

struct MLPOptions {
  Activation hidden = Activation::relu;
  Activation output = Activation::identity;  // logits, for the losses on logits
  DType dtype = DType::f32;
  std::uint64_t seed = 0;
  Init init = Init::kaiming_uniform;
  bool bias = true;
  // The first layer's weight storage. Its input is the data, which takes no
  // gradient, so in_out loses nothing there and skips a sparse batch's zeros
  // (images' black background) in two of its products. The other layers
  // keep out_in, which keeps their input gradient behind a ReLU sparse too.
  WeightLayout first_layout = WeightLayout::in_out;
  // Each layer (its product and activation) as a checkpointed block
  // (tapegrad::checkpoint): the tape keeps each layer's output only and the
  // backward sweep recomputes the inside, trading activation memory for a
  // second forward. Same values and gradients.
  bool checkpoint_layers = false;
};

// Fully connected layers of the given sizes: {784, 256, 128, 10} is three
// Linear layers named layer0..layer2, each drawn as a cluster in DOT output.
class MLP : public Module {
 public:
  MLP(std::vector<std::int64_t> sizes, MLPOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::size_t depth() const { return layers_.size(); }
  Linear& layer(std::size_t i) { return *layers_[i]; }
  const std::vector<std::int64_t>& sizes() const { return sizes_; }
  const MLPOptions& options() const { return opt_; }

 private:
  std::vector<std::int64_t> sizes_;
  MLPOptions opt_;
  std::vector<std::unique_ptr<Linear>> layers_;
};

// The leaves that Parameter::var recorded for `params` on `tape`, in order:
// the inputs to give jvp, hvp or hessian (tapegrad/higher.hpp) for
// derivatives with respect to a model's parameters after a forward pass.
// Throws if a parameter has no leaf on the tape, or more than one.
std::vector<Ref> parameter_leaves(Tape& tape, const std::vector<Parameter*>& params);

}  // namespace tapegrad::nn
