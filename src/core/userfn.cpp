// User-defined functions (userfn.hpp): the registries, the scalar node's
// rules, and the tensor ops that call the user's code.
#include "tapegrad/userfn.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <mutex>

#include "core/higher_rules.hpp"
#include "core/kernels.hpp"
#include "tapegrad/ops.hpp"
#include "tapegrad/registry.hpp"

namespace tapegrad {
namespace detail {
TensorOpDef user_unary_def(const char* name);    // unary.cpp
TensorAttrs user_unary_attrs(std::uint32_t id);  // unary.cpp
}  // namespace detail
namespace {

using detail::grads_of;
using detail::values_of;
using detail::wants_grad;

constexpr std::uint32_t kMaxFunctions = 4096;

// Append-only tables: registration takes a lock, reading an entry by id
// takes none (entries never move and are never freed).
template <class Entry>
class Table {
 public:
  std::uint32_t add(Entry* e, const char* kind) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::uint32_t id = n_.load(std::memory_order_relaxed);
    if (id >= kMaxFunctions)
      throw Error(fmt::format("{} '{}': more than {} defined in one program", kind, e->name,
                              kMaxFunctions));
    items_[id] = e;
    n_.store(id + 1, std::memory_order_release);
    return id;
  }
  const Entry* get(std::uint32_t id) const {
    return id < n_.load(std::memory_order_acquire) ? items_[id] : nullptr;
  }

 private:
  std::mutex mu_;
  std::atomic<std::uint32_t> n_{0};
  std::array<Entry*, kMaxFunctions> items_{};
};

struct UserFn {
  std::string name;
  ScalarFunctionRules rules;
  TensorOpDef def;
};
// An ExternalFunction's node: which function.
struct ExternalAttrs {
  std::uint32_t id;
};
struct ExternalFn {
  std::string name;
  ExternalFunctionRules rules;
  TensorOpDef def;
};
Table<UserFn>& user_table() {
  static Table<UserFn> t;
  return t;
}
Table<ExternalFn>& external_table() {
  static Table<ExternalFn> t;
  return t;
}

const UserFn& user_fn(std::uint32_t id) {
  const UserFn* f = user_table().get(id);
  if (!f) throw Error(fmt::format("user function #{} is not defined", id));
  return *f;
}
std::uint32_t id_of_slot(double slot) { return static_cast<std::uint32_t>(slot); }

// ---- an ExternalFunction: the user's box over float64 copies ----

const ExternalFn& ext_of(Tape& tape, std::uint32_t t) {
  const ExternalFn* f = external_table().get(tape.tensor_node(t).attrs.get<ExternalAttrs>().id);
  if (!f) throw Error(fmt::format("tensor node t{}: external function not defined", t));
  return *f;
}
// A node's values (or gradient, or tangent) as float64.
template <class T>
std::vector<double> widen(const T* p, std::int64_t n) {
  return std::vector<double>(p, p + n);
}
std::vector<double> as_doubles(Tape& tape, std::uint32_t t, const void* p) {
  return dispatch_dtype(tape.tensor_node(t).dtype, [&](auto z) {
    using T = decltype(z);
    return widen(static_cast<const T*>(p), tape.tensor_node(t).shape.numel());
  });
}
struct Gathered {
  std::vector<std::vector<double>> x;
  std::vector<std::span<const double>> spans;
};
Gathered inputs_of(Tape& tape, std::uint32_t t) {
  Gathered g;
  const TensorNode& n = tape.tensor_node(t);
  for (int k = 0; k < n.n_in; ++k)
    g.x.push_back(as_doubles(tape, n.in[k], tape.tensor_node(n.in[k]).value));
  for (const auto& v : g.x) g.spans.emplace_back(v);
  return g;
}
void ext_forward(Tape& tape, std::uint32_t t) {
  const ExternalFn& f = ext_of(tape, t);
  const Gathered in = inputs_of(tape, t);
  std::vector<double> y(static_cast<std::size_t>(tape.tensor_node(t).shape.numel()));
  f.rules.forward(in.spans, y);
  dispatch_dtype(tape.tensor_node(t).dtype, [&](auto z) {
    using T = decltype(z);
    T* out = values_of<T>(tape, t);
    for (std::size_t i = 0; i < y.size(); ++i) out[i] = static_cast<T>(y[i]);
  });
}
void ext_backward(Tape& tape, std::uint32_t t) {
  const ExternalFn& f = ext_of(tape, t);
  const Gathered in = inputs_of(tape, t);
  const std::vector<double> y = as_doubles(tape, t, tape.tensor_node(t).value);
  const std::vector<double> ybar = as_doubles(tape, t, tape.tensor_node(t).grad);
  std::vector<std::vector<double>> xbar;
  for (const auto& v : in.x) xbar.emplace_back(v.size(), 0.0);
  std::vector<std::span<double>> xs(xbar.begin(), xbar.end());
  f.rules.vjp(in.spans, y, ybar, xs);
  const TensorNode& n = tape.tensor_node(t);
  for (int k = 0; k < n.n_in; ++k) {
    if (!wants_grad(tape, t, k)) continue;
    const std::uint32_t ik = n.in[k];
    dispatch_dtype(tape.tensor_node(ik).dtype, [&](auto z) {
      using T = decltype(z);
      T* g = grads_of<T>(tape, ik);
      for (std::size_t i = 0; i < xbar[k].size(); ++i) g[i] += static_cast<T>(xbar[k][i]);
    });
  }
}
void ext_jvp(Tape& tape, std::uint32_t t, Tangents& tg) {
  const ExternalFn& f = ext_of(tape, t);
  if (!f.rules.jvp)
    throw Error(
        fmt::format("forward mode: external function '{}' (tensor node t{}) has no JVP rule; give "
                    "ExternalFunctionRules::jvp",
                    f.name, t));
  const Gathered in = inputs_of(tape, t);
  const TensorNode& n = tape.tensor_node(t);
  std::vector<std::vector<double>> xdot;
  for (int k = 0; k < n.n_in; ++k) {
    const std::uint32_t ik = n.in[k];
    xdot.push_back(dispatch_dtype(tape.tensor_node(ik).dtype, [&](auto z) {
      using T = decltype(z);
      return widen(tg.of<T>(ik), tape.tensor_node(ik).shape.numel());
    }));
  }
  std::vector<std::span<const double>> xd(xdot.begin(), xdot.end());
  const std::vector<double> y = as_doubles(tape, t, n.value);
  std::vector<double> ydot(y.size());
  f.rules.jvp(in.spans, y, xd, ydot);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    T* out = tg.out<T>(t);
    for (std::size_t i = 0; i < ydot.size(); ++i) out[i] = static_cast<T>(ydot[i]);
  });
}
void ext_curvature(Tape& tape, std::uint32_t t, Tangents&) {
  throw Error(fmt::format(
      "higher-order sweep: external function '{}' (tensor node t{}) has no second-order rule; "
      "Hessians through it are not available (its VJP and JVP give first derivatives only)",
      ext_of(tape, t).name, t));
}

}  // namespace

// ---- ScalarFunction ----

ScalarFunction::ScalarFunction(std::string name, ScalarFunctionRules rules) {
  if (!rules.value || !rules.derivative)
    throw Error(fmt::format("ScalarFunction '{}': give both value and derivative", name));
  auto* e = new UserFn{std::move(name), std::move(rules), {}};
  e->def = detail::user_unary_def(e->name.c_str());  // unary.cpp's element-wise kernels
  id_ = user_table().add(e, "ScalarFunction");
}
const std::string& ScalarFunction::name() const { return user_fn(id_).name; }
double ScalarFunction::operator()(double x) const { return user_fn(id_).rules.value(x); }

// The node: {a = x, da = f'(x), b = sink, db = the function's id}. The
// sink's slot is free on a one-input node; the sweep sends db * grad into
// the sink, which nothing reads.
Scalar ScalarFunction::operator()(const Scalar& x, Site where) const {
  Tape& t = detail::operand(ScalarOp::custom, x);
  const detail::Partials p = detail::user_function_first(id_, t.scalar_value(x.index()));
  return {
      t, t.push_scalar(ScalarOp::custom, x.index(), 0, p.da, static_cast<double>(id_), p.v, where)};
}
Tensor ScalarFunction::operator()(const Tensor& x, Site where) const {
  const UserFn& f = user_fn(id_);
  return record_op(f.def, {x}, x.shape(), detail::user_unary_attrs(id_), where);
}

void ScalarFunction::register_check(double lo, double hi) const {
  const ScalarFunction self = *this;
  using In = std::span<const Tensor>;
  register_op_check({name() + "/scalar",
                     {Shape{}},
                     [self](In x) {
                       return scale(self(x[0].item()), ones(Shape{}, {DType::f64, false}));
                     },
                     lo,
                     hi,
                     0});
  register_op_check({name(), {Shape{2, 3}}, [self](In x) { return self(x[0]); }, lo, hi, 0});
}

namespace detail {
const std::string& user_function_name(const Tape& tape, std::uint32_t node) {
  return user_fn(id_of_slot(tape.scalar_edges(node).db)).name;
}
double user_function_value(double id_slot, double x) {
  return user_fn(id_of_slot(id_slot)).rules.value(x);
}
double user_function_derivative(double id_slot, double x, double y) {
  return user_fn(id_of_slot(id_slot)).rules.derivative(x, y);
}
Partials user_function_first(double id_slot, double x) {
  const UserFn& f = user_fn(id_of_slot(id_slot));
  const double v = f.rules.value(x);
  return {v, f.rules.derivative(x, v), id_slot};
}
double user_function_second(double id_slot, double x, double y) {
  const UserFn& f = user_fn(id_of_slot(id_slot));
  if (!f.rules.second)
    throw Error(
        fmt::format("higher-order sweep: user function '{}' has no second derivative; give "
                    "ScalarFunctionRules::second",
                    f.name));
  return f.rules.second(x, y);
}
}  // namespace detail

// ---- ExternalFunction ----

ExternalFunction::ExternalFunction(std::string name, ExternalFunctionRules rules) {
  if (!rules.forward || !rules.vjp)
    throw Error(fmt::format("ExternalFunction '{}': give both forward and vjp", name));
  auto* e = new ExternalFn{std::move(name), std::move(rules), {}};
  e->def = TensorOpDef{.name = e->name.c_str(),
                       .forward = &ext_forward,
                       .backward = &ext_backward,
                       .jvp = &ext_jvp,
                       .curvature = &ext_curvature};
  id_ = external_table().add(e, "ExternalFunction");
}
const std::string& ExternalFunction::name() const { return external_table().get(id_)->name; }

Tensor ExternalFunction::operator()(std::initializer_list<Tensor> inputs, const Shape& out,
                                    Site where) const {
  return record_op(external_table().get(id_)->def, inputs, out, TensorAttrs::of(ExternalAttrs{id_}),
                   where);
}

std::vector<Scalar> ExternalFunction::operator()(std::span<const Scalar> inputs,
                                                 std::size_t outputs, Site where) const {
  if (inputs.empty()) throw Error(fmt::format("external function '{}': no inputs", name()));
  const auto n = static_cast<std::int64_t>(inputs.size());
  const auto m = static_cast<std::int64_t>(outputs);
  std::vector<Tensor> parts;
  for (const Scalar& s : inputs)
    parts.push_back(scale(s, ones(Shape{1}, {DType::f64, false}), where));
  const Tensor x = n == 1 ? parts[0] : concat(parts, 0, where);
  const Tensor y = reshape((*this)({x}, Shape{m}, where), Shape{m, 1}, where);
  std::vector<Scalar> out;
  for (std::int64_t i = 0; i < m; ++i) out.push_back(slice_rows(y, i, i + 1, where).item(where));
  return out;
}

}  // namespace tapegrad
