#include "tapegrad/tensor.hpp"

#include <fmt/format.h>

#include <cstring>
#include <random>

#include "core/kernels.hpp"
#include "tapegrad/higher.hpp"

namespace tapegrad {

namespace {
const TensorOpDef kLeaf{.name = "leaf"};
const TensorOpDef kConstant{.name = "constant"};

std::uint32_t make_leaf(Tape& tape, const Shape& shape, const TensorOptions& opt, Site where) {
  const std::uint32_t t =
      tape.push_tensor(opt.requires_grad ? &kLeaf : &kConstant, shape, opt.dtype, {}, where);
  tape.tensor_node(t).requires_grad = opt.requires_grad && tape.grad_enabled();
  return t;
}

template <class Gen>
Tensor fill_with(const Shape& shape, const TensorOptions& opt, Site where, Gen&& gen) {
  Tape& tape = current_tape();
  const std::uint32_t t = make_leaf(tape, shape, opt, where);
  const std::int64_t n = shape.numel();
  dispatch_dtype(opt.dtype, [&](auto z) {
    using T = decltype(z);
    T* p = detail::values_of<T>(tape, t);
    for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(gen(i));
  });
  return {tape, t};
}
}  // namespace

void Tensor::throw_empty(const char* what) {
  throw Error(
      fmt::format("{}: empty Tensor handle (default-constructed); assign it the result "
                  "of an operation first",
                  what));
}

std::vector<double> Tensor::values() const {
  const TensorNode& n = node();
  std::vector<double> out(static_cast<std::size_t>(n.shape.numel()));
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* p = static_cast<const T*>(n.value);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

std::vector<double> Tensor::grads() const {
  const TensorNode& n = node();
  std::vector<double> out(static_cast<std::size_t>(n.shape.numel()), 0.0);
  if (n.scalar_out != kNone || !n.grad_or_null()) return out;
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* p = static_cast<const T*>(n.grad);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

namespace {
void check_flat(const TensorNode& n, std::int64_t i, const char* what) {
  if (i < 0 || i >= n.shape.numel())
    throw Error(fmt::format("{}: index {} is out of range for shape {} ({} elements)", what, i,
                            n.shape.str(), n.shape.numel()));
}
}  // namespace

double Tensor::value(std::int64_t i) const {
  const TensorNode& n = node();
  check_flat(n, i, "Tensor::value");
  return dispatch_dtype(n.dtype, [&](auto z) -> double {
    return static_cast<double>(static_cast<const decltype(z)*>(n.value)[i]);
  });
}

double Tensor::grad(std::int64_t i) const {
  const TensorNode& n = node();
  check_flat(n, i, "Tensor::grad");
  if (!n.grad_or_null()) return 0.0;
  return dispatch_dtype(n.dtype, [&](auto z) -> double {
    return static_cast<double>(static_cast<const decltype(z)*>(n.grad)[i]);
  });
}

template <class T>
std::span<const T> Tensor::data() const {
  const TensorNode& n = node();
  if (n.dtype != dtype_of<T>())
    throw Error(fmt::format("Tensor::data: the tensor holds {}, not {}", dtype_name(n.dtype),
                            dtype_name(dtype_of<T>())));
  return {static_cast<const T*>(n.value), static_cast<std::size_t>(n.shape.numel())};
}

template <class T>
std::span<T> Tensor::mutable_data() {
  Tape& tape = checked("Tensor::mutable_data");
  TensorNode& n = tape.tensor_node(index_);
  if (n.op->backward)
    throw Error(
        fmt::format("Tensor::mutable_data: node {} is the result of '{}'; only leaves may "
                    "be written (the graph recorded their values)",
                    index_, n.op->name));
  if (n.dtype != dtype_of<T>())
    throw Error(fmt::format("Tensor::mutable_data: the tensor holds {}, not {}",
                            dtype_name(n.dtype), dtype_name(dtype_of<T>())));
  return {static_cast<T*>(n.value), static_cast<std::size_t>(n.shape.numel())};
}
template std::span<const float> Tensor::data<float>() const;
template std::span<const double> Tensor::data<double>() const;
template std::span<float> Tensor::mutable_data<float>();
template std::span<double> Tensor::mutable_data<double>();

// ---- item: a one-element tensor read as a Scalar ----
// The tensor node "item" is recorded just before its scalar output, so the
// sweep reaches the scalar first and then this rule: d(item)/d(x[0]) = 1.
static void item_backward(Tape& tape, std::uint32_t t) {
  TensorNode& n = tape.tensor_node(t);
  const double g = tape.scalar_adjoints()[n.scalar_out];
  const std::uint32_t x = n.in[0];
  dispatch_dtype(tape.tensor_node(x).dtype, [&](auto z) {
    detail::grads_of<decltype(z)>(tape, x)[0] += static_cast<decltype(z)>(g);
  });
}
// Replay: the element read again into the node and its scalar output.
static void item_forward(Tape& tape, std::uint32_t t) {
  TensorNode& n = tape.tensor_node(t);
  const TensorNode& x = tape.tensor_node(n.in[0]);
  dispatch_dtype(x.dtype, [&](auto z) {
    using T = decltype(z);
    const T v = static_cast<const T*>(x.value)[0];
    static_cast<T*>(n.value)[0] = v;
    tape.set_scalar_value(n.scalar_out, static_cast<double>(v));
  });
}
// Forward mode: the scalar's tangent is the element's.
static void item_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  TensorNode& n = tape.tensor_node(t);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T v = tg.of<T>(n.in[0])[0];
    tg.out<T>(t)[0] = v;
    tg.set_scalar(n.scalar_out, static_cast<double>(v));
  });
}
static const TensorOpDef kItem{.name = "item",
                               .forward = &item_forward,
                               .backward = &item_backward,
                               .jvp = &item_jvp,
                               .curvature = &no_curvature,
                               .gate = Gate::copies};

Scalar Tensor::item(Site where) const {
  Tape& tape = checked("item");
  if (numel() != 1)
    throw Error(fmt::format("item: the tensor has shape {} ({} elements); item() needs exactly one",
                            shape().str(), numel()));
  const double v = value(0);
  const std::uint32_t t = tape.push_tensor(&kItem, Shape{}, dtype(), {index_}, where);
  TensorNode& n = tape.tensor_node(t);
  n.scalar_out = static_cast<std::uint32_t>(tape.scalar_count());
  const ScalarOp op = n.requires_grad ? ScalarOp::item : ScalarOp::constant;
  const Scalar out{tape, tape.push_scalar(op, 0, 0, 0.0, 0.0, v, where)};
  item_forward(tape, t);  // the node's own value, for inspection
  return out;
}

void Tensor::backward() const { checked("backward").backward(*this); }
void Tensor::backward(const Tensor& seed) const { checked("backward").backward(*this, seed); }

// ---- creation ----

Tensor tensor(std::span<const double> values, const Shape& shape, TensorOptions opt, Site where) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel())
    throw Error(fmt::format("tensor: {} values given for shape {} ({} elements)", values.size(),
                            shape.str(), shape.numel()));
  return fill_with(shape, opt, where,
                   [&](std::int64_t i) { return values[static_cast<std::size_t>(i)]; });
}
Tensor tensor(std::initializer_list<double> values, const Shape& shape, TensorOptions opt,
              Site where) {
  return tensor(std::span<const double>(values.begin(), values.size()), shape, opt, where);
}
Tensor tensor(std::initializer_list<double> values, TensorOptions opt, Site where) {
  return tensor(values, Shape{static_cast<std::int64_t>(values.size())}, opt, where);
}
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, TensorOptions opt,
              Site where) {
  const std::size_t cols = rows.size() ? rows.begin()->size() : 0;
  std::vector<double> flat;
  std::size_t r = 0;
  for (const auto& row : rows) {
    if (row.size() != cols)
      throw Error(fmt::format("tensor: row {} has {} values, row 0 has {}", r, row.size(), cols));
    flat.insert(flat.end(), row.begin(), row.end());
    ++r;
  }
  return tensor(flat,
                Shape{static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(cols)}, opt,
                where);
}
Tensor zeros(const Shape& shape, TensorOptions opt, Site where) {
  return full(shape, 0.0, opt, where);
}
Tensor ones(const Shape& shape, TensorOptions opt, Site where) {
  return full(shape, 1.0, opt, where);
}
Tensor full(const Shape& shape, double value, TensorOptions opt, Site where) {
  return fill_with(shape, opt, where, [&](std::int64_t) { return value; });
}
Tensor randn(const Shape& shape, std::uint64_t seed, double stddev, TensorOptions opt, Site where) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  return fill_with(shape, opt, where, [&](std::int64_t) { return dist(rng); });
}
Tensor uniform(const Shape& shape, double lo, double hi, std::uint64_t seed, TensorOptions opt,
               Site where) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  return fill_with(shape, opt, where, [&](std::int64_t) { return dist(rng); });
}

Tensor external(const Shape& shape, DType dtype, void* value, void* grad, const char* label,
                Site where) {
  if (!value && shape.numel() > 0)
    throw Error(fmt::format("external: null value pointer for shape {}", shape.str()));
  Tape& tape = current_tape();
  return {tape, tape.push_external(shape, dtype, value, grad, label, where)};
}

Tensor detach(const Tensor& x, Site where) {
  Tape& tape = x.checked("detach");
  const TensorNode& n = tape.tensor_node(x.index());
  const std::uint32_t t = tape.push_tensor(&kConstant, n.shape, n.dtype, {}, where);
  const TensorNode& src = tape.tensor_node(x.index());  // push may have moved nodes
  std::memcpy(tape.tensor_node(t).value, src.value,
              static_cast<std::size_t>(src.shape.numel()) * dtype_size(src.dtype));
  return {tape, t};
}

// ---- Scalar pieces that need the tape's definition ----

void Scalar::throw_empty(const char* what) {
  throw Error(
      fmt::format("{}: empty Scalar handle (default-constructed); assign it the result "
                  "of an operation first",
                  what));
}
double Scalar::grad() const {
  Tape& t = checked("Scalar::grad");
  return t.scalar_op(index_) == ScalarOp::constant ? 0.0 : t.scalar_grad(index_);
}
void Scalar::set_value(double v) {
  Tape& t = checked("Scalar::set_value");
  if (t.scalar_op(index_) != ScalarOp::leaf && t.scalar_op(index_) != ScalarOp::constant)
    throw Error(
        fmt::format("Scalar::set_value: node {} is the result of '{}'; only leaves may be "
                    "set (the graph recorded its value)",
                    index_, scalar_op_name(t.scalar_op(index_))));
  t.set_scalar_value(index_, v);
}
bool Scalar::is_leaf() const {
  const ScalarOp op = checked("Scalar::is_leaf").scalar_op(index_);
  return op == ScalarOp::leaf || op == ScalarOp::constant;
}
Scalar& Scalar::named(std::string name) {
  checked("Scalar::named").set_label(NodeKind::scalar, index_, std::move(name));
  return *this;
}
Tensor& Tensor::named(std::string name) {
  checked("Tensor::named").set_label(NodeKind::tensor, index_, std::move(name));
  return *this;
}
Scalar var(double v, Site where) { return current_tape().variable(v, where); }
Scalar::Scalar(double v, Site where) : Scalar(current_tape().constant(v, where)) {}
Scalar constant(double v, Site where) { return current_tape().constant(v, where); }
Scalar detach(const Scalar& x, Site where) {
  return x.checked("detach").constant(x.value(), where);
}

namespace detail {
void throw_mixed_tapes(const char* op) {
  throw Error(
      fmt::format("{}: the operands live on different tapes; build a graph on one tape", op));
}
}  // namespace detail

}  // namespace tapegrad

namespace tapegrad::detail {
void throw_bad_operand(ScalarOp op, const Scalar& x) {
  x.checked(scalar_op_name(op));  // throws the precise error (empty or stale)
  throw Error(fmt::format("{}: invalid operand", scalar_op_name(op)));
}
}  // namespace tapegrad::detail
