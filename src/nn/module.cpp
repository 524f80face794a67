#include "tapegrad/nn/module.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>

#include "tapegrad/ops.hpp"

namespace tapegrad::nn {

// ---- Parameter ----

namespace {
Shape stored(const std::string& name, const Shape& shape, bool transposed) {
  if (!transposed) return shape;
  if (shape.rank() != 2)
    throw Error(fmt::format("parameter {}: only a matrix can be stored transposed, not shape {}",
                            name, shape.str()));
  return Shape{shape[1], shape[0]};
}
// dst (cols x rows) = src (rows x cols) transposed, elements of `size` bytes.
void transpose_bytes(const void* src, void* dst, std::int64_t rows, std::int64_t cols,
                     std::size_t size) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      std::memcpy(d + static_cast<std::size_t>(c * rows + r) * size,
                  s + static_cast<std::size_t>(r * cols + c) * size, size);
}
}  // namespace

Parameter::Parameter(std::string name, const Shape& shape, DType dtype, bool stored_transposed)
    : name_(std::move(name)),
      shape_(shape),
      stored_shape_(stored(name_, shape, stored_transposed)),
      transposed_(stored_transposed),
      dtype_(dtype),
      value_(bytes(), kValueOffset),
      grad_(bytes(), kGradOffset) {
  if (bytes()) {
    std::memset(value_.data(), 0, bytes());
    std::memset(grad_.data(), 0, bytes());
  }
  pending_.memory = grad_.data();
  pending_.bytes = bytes();
  pending_.dtype = dtype_;
  pending_.outer_ok = true;
}

void Parameter::throw_dtype() const {
  throw Error(
      fmt::format("parameter {}: holds {}; asked for another type", name_, dtype_name(dtype_)));
}

void Parameter::stored_to_declared(const void* stored, void* declared) const {
  if (transposed_)
    transpose_bytes(stored, declared, stored_shape_[0], stored_shape_[1], dtype_size(dtype_));
  else if (bytes())
    std::memcpy(declared, stored, bytes());
}
void Parameter::declared_to_stored(const void* declared, void* stored) const {
  if (transposed_)
    transpose_bytes(declared, stored, shape_[0], shape_[1], dtype_size(dtype_));
  else if (bytes())
    std::memcpy(stored, declared, bytes());
}

namespace {
// Memory index of declared element i.
inline std::size_t stored_index(std::size_t i, bool transposed, const Shape& shape) {
  if (!transposed) return i;
  const auto rows = static_cast<std::size_t>(shape[0]), cols = static_cast<std::size_t>(shape[1]);
  return (i % cols) * rows + i / cols;
}
}  // namespace

std::vector<double> Parameter::values() const {
  std::vector<double> out(static_cast<std::size_t>(numel()));
  dispatch_dtype(dtype_, [&](auto z) {
    const auto* p = static_cast<const decltype(z)*>(value_.data());
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<double>(p[stored_index(i, transposed_, shape_)]);
  });
  return out;
}
std::vector<double> Parameter::grads() const {
  std::vector<double> out(static_cast<std::size_t>(numel()), 0.0);
  if (pending_.zero()) return out;
  settle_grad();
  dispatch_dtype(dtype_, [&](auto z) {
    const auto* p = static_cast<const decltype(z)*>(grad_.data());
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<double>(p[stored_index(i, transposed_, shape_)]);
  });
  return out;
}
void Parameter::set_values(std::span<const double> v) {
  if (static_cast<std::int64_t>(v.size()) != numel())
    throw Error(
        fmt::format("parameter {}: {} values given for shape {}", name_, v.size(), shape_.str()));
  dispatch_dtype(dtype_, [&](auto z) {
    auto* p = static_cast<decltype(z)*>(value_.data());
    for (std::size_t i = 0; i < v.size(); ++i)
      p[stored_index(i, transposed_, shape_)] = static_cast<decltype(z)>(v[i]);
  });
}
namespace {
thread_local int t_replica = 0;
}  // namespace
ReplicaScope::ReplicaScope(int k) : prev_(t_replica) { t_replica = k; }
ReplicaScope::~ReplicaScope() { t_replica = prev_; }
int current_replica() { return t_replica; }

Tensor Parameter::var(Tape& tape, Site where) {
  const int k = t_replica;
  if (k == 0)
    return {tape, tape.push_external(stored_shape_, dtype_, value_.data(), grad_.data(),
                                     name_.c_str(), where, &pending_)};
  if (k < 0 || k >= replicas())
    throw Error(fmt::format("parameter {}: recording replica {} but it has {} (set_replicas)",
                            name_, k, replicas()));
  Replica& r = replicas_[static_cast<std::size_t>(k - 1)];
  return {tape, tape.push_external(stored_shape_, dtype_, value_.data(), r.grad.data(),
                                   name_.c_str(), where, &r.pending)};
}
void Parameter::set_replicas(int n) {
  if (n < 1) throw Error(fmt::format("parameter {}: {} replicas; need at least 1", name_, n));
  replicas_.resize(static_cast<std::size_t>(n - 1));
  for (Replica& r : replicas_) {
    if (r.grad.bytes() != bytes()) r.grad = Buffer(bytes(), kGradOffset);
    r.pending.memory = r.grad.data();
    r.pending.bytes = bytes();
    r.pending.dtype = dtype_;
    r.pending.state = PendingGrad::State::kZero;
  }
}
bool Parameter::reduce_begin() {
  bool any = false;
  for (const Replica& r : replicas_) any |= !r.pending.zero();
  if (pending_.state == PendingGrad::State::kOuter) pending_.settle();
  reduce_overwrite_ = pending_.zero();
  return any;
}
void Parameter::reduce_range(std::int64_t b, std::int64_t e) {
  dispatch_dtype(dtype_, [&](auto z) {
    using T = decltype(z);
    T* g = static_cast<T*>(grad_.data());
    bool first = reduce_overwrite_;
    for (const Replica& r : replicas_) {
      if (r.pending.zero()) continue;
      const T* s = static_cast<const T*>(r.grad.data());
      if (first) {
        std::memcpy(g + b, s + b, static_cast<std::size_t>(e - b) * sizeof(T));
        first = false;
        continue;
      }
#pragma omp simd
      for (std::int64_t i = b; i < e; ++i) g[i] += s[i];
    }
  });
}
void Parameter::reduce_end() {
  bool any = false;
  for (Replica& r : replicas_)
    any |= !r.pending.zero(), r.pending.state = PendingGrad::State::kZero;
  if (any) pending_.state = PendingGrad::State::kWritten;
}

// ---- Module ----

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Parameter*>> out;
  for (Parameter& p : params_) out.emplace_back(p.name(), &p);
  for (Module* c : children_)
    for (auto& [n, p] : c->named_parameters()) out.emplace_back(n, p);
  return out;
}
std::vector<Parameter*> Module::parameters() {
  std::vector<Parameter*> out;
  for (auto& np : named_parameters()) out.push_back(np.second);
  return out;
}
void Module::zero_grad() {
  for (Parameter* p : parameters()) p->zero_grad();
}
std::int64_t Module::parameter_count() {
  std::int64_t n = 0;
  for (Parameter* p : parameters()) n += p->numel();
  return n;
}
Parameter& Module::register_parameter(const std::string& name, const Shape& shape, DType dtype,
                                      bool stored_transposed) {
  return params_.emplace_back(name_.empty() ? name : name_ + "." + name, shape, dtype,
                              stored_transposed);
}

// ---- activations ----

Activation parse_activation(const std::string& name) {
  for (Activation a : {Activation::identity, Activation::relu, Activation::leaky_relu,
                       Activation::sigmoid, Activation::tanh})
    if (name == activation_name(a)) return a;
  throw Error(
      fmt::format("unknown activation '{}': choose identity, relu, leaky_relu, sigmoid "
                  "or tanh",
                  name));
}
const char* activation_name(Activation a) {
  switch (a) {
    case Activation::identity:
      return "identity";
    case Activation::relu:
      return "relu";
    case Activation::leaky_relu:
      return "leaky_relu";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::tanh:
      return "tanh";
  }
  return "?";
}
Tensor apply(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::identity:
      return x;
    case Activation::relu:
      return relu(x);
    case Activation::leaky_relu:
      return leaky_relu(x, 0.01);
    case Activation::sigmoid:
      return sigmoid(x);
    case Activation::tanh:
      return tanh(x);
  }
  return x;
}

// ---- Linear ----

Linear::Linear(std::string name, std::int64_t in, std::int64_t out, DType dtype, std::uint64_t seed,
               Init init, bool bias, WeightLayout layout)
    : Module(std::move(name)), in_(in), out_(out), layout_(layout) {
  if (in <= 0 || out <= 0)
    throw Error(
        fmt::format("Linear {}: sizes must be positive, got in={} out={}", this->name(), in, out));
  weight_ = &register_parameter("weight", Shape{out, in}, dtype, layout == WeightLayout::in_out);
  if (bias) bias_ = &register_parameter("bias", Shape{out}, dtype);
  // Kaiming uniform for ReLU: U(-b, b), b = sqrt(6 / fan_in); Xavier: b = sqrt(6 / (in + out)).
  const double b = init == Init::kaiming_uniform ? std::sqrt(6.0 / static_cast<double>(in))
                                                 : std::sqrt(6.0 / static_cast<double>(in + out));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-b, b);
  std::vector<double> w(static_cast<std::size_t>(in * out));
  for (double& v : w) v = u(rng);
  weight_->set_values(w);
  if (bias_) {
    const double bb = 1.0 / std::sqrt(static_cast<double>(in));
    std::uniform_real_distribution<double> ub(-bb, bb);
    std::vector<double> bv(static_cast<std::size_t>(out));
    for (double& v : bv) v = ub(rng);
    bias_->set_values(bv);
  }
}

Tensor Linear::forward(const Tensor& x) {
  Tape& tape = x.tape();
  ScopeName scope(tape, name());
  // The bias's leaf first, as in every tape recorded so far.
  const Tensor b = bias_ ? bias_->var(tape) : Tensor();
  const Tensor w = weight_->var(tape);
  return layout_ == WeightLayout::in_out ? affine(x, w, b) : linear(x, w, b);
}

// ---- MLP ----

MLP::MLP(std::vector<std::int64_t> sizes, MLPOptions opt)
    : Module(""), sizes_(std::move(sizes)), opt_(opt) {
  if (sizes_.size() < 2)
    throw Error(fmt::format("MLP: needs at least an input and an output size, got {} sizes",
                            sizes_.size()));
  for (std::size_t i = 0; i + 1 < sizes_.size(); ++i) {
    layers_.push_back(std::make_unique<Linear>(
        fmt::format("layer{}", i), sizes_[i], sizes_[i + 1], opt.dtype, opt.seed * 1000003 + i,
        opt.init, opt.bias, i == 0 ? opt.first_layout : WeightLayout::out_in));
    register_module(*layers_.back());
  }
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Activation a = i + 1 < layers_.size() ? opt_.hidden : opt_.output;
    Linear& layer = *layers_[i];
    const auto block = [&layer, a](const Tensor& in) {
      Tensor z = layer.forward(in);
      ScopeName scope(z.tape(), layer.name());
      return apply(a, z);
    };
    if (opt_.checkpoint_layers) {
      ScopeName scope(h.tape(), layer.name());
      h = checkpoint(block, h);
    } else {
      h = block(h);
    }
  }
  return h;
}

std::vector<Ref> parameter_leaves(Tape& tape, const std::vector<Parameter*>& params) {
  std::vector<Ref> out;
  for (Parameter* p : params) {
    std::uint32_t found = kNone;
    for (std::uint32_t t = 0; t < tape.tensor_count(); ++t) {
      const TensorNode& n = tape.tensor_node(t);
      if (n.op->backward || n.value != p->raw_value()) continue;
      if (found != kNone)
        throw Error(fmt::format(
            "parameter_leaves: parameter '{}' has two leaves on the tape (t{} and t{}); "
            "record one var() per parameter",
            p->name(), found, t));
      found = t;
    }
    if (found == kNone)
      throw Error(fmt::format(
          "parameter_leaves: parameter '{}' has no leaf on the tape; run the forward pass first",
          p->name()));
    out.emplace_back(Tensor(tape, found));
  }
  return out;
}

}  // namespace tapegrad::nn
