#pragma once
// The op implementer's view of a tensor node: the rules an op defines
// (TensorOpDef), the attributes it saves (TensorAttrs) and the node itself.
// A user of the library needs none of this; docs/new-op.md walks through
// writing an op with it. (Included by tape.hpp, which stores the nodes.)
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "tapegrad/dtype.hpp"
#include "tapegrad/op_table.hpp"
#include "tapegrad/pending_grad.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/storage.hpp"

namespace tapegrad {

class Tape;
class Tangents;  // higher.hpp
inline constexpr std::uint32_t kNone = 0xffffffffu;

using BackwardFn = void (*)(Tape& tape, std::uint32_t node);
using ForwardFn = void (*)(Tape& tape, std::uint32_t node);
// Higher-order rules (higher.hpp): the node's tangent from its inputs'
// tangents, and its curvature term (the second-order part of the adjoint's
// tangent).
using JvpFn = void (*)(Tape& tape, std::uint32_t node, Tangents& tg);
using CurvatureFn = void (*)(Tape& tape, std::uint32_t node, Tangents& tg);
// The curvature rule of an op that is linear or piecewise linear in every
// input (add, reshape, relu, max, ...): it has none. Ops say so explicitly,
// so that an op without a second-order rule is an error, never a silent
// first-order answer. (At a kink this is the documented policy: 0 curvature.)
void no_curvature(Tape& tape, std::uint32_t node, Tangents& tg);

// What a tensor op is, in the order the sweeps use it: how its value is
// computed from its inputs and attributes (forward: recording, replay and
// the per-node check run it), how the inputs' gradients follow from the
// output's (backward), and its forward-mode and second-order rules (jvp,
// curvature; higher.hpp), without which it works to first order and the
// higher-order functions throw, naming it. The gate is the pattern drawn in
// graphs and traces, the note what the pattern does for this op. Each op
// defines one of these next to its code, with designated initializers:
//   const TensorOpDef kMatmul{.name = "matmul", .forward = &matmul_forward, ...,
//                             .gate = Gate::switches, .note = "(dA = dC B^T, dB = A^T dC)"};
struct TensorOpDef {
  const char* name = "";
  ForwardFn forward = nullptr;      // null for leaves and constants
  BackwardFn backward = nullptr;    // null for leaves and constants
  JvpFn jvp = nullptr;              // null: no forward mode
  CurvatureFn curvature = nullptr;  // no_curvature for (piecewise) linear ops; null: none
  Gate gate = Gate::none;
  const char* note = nullptr;
};
// "switches (dA = dC B^T, dB = A^T dC)": the gate and the note, as the
// trace and the explorer print them ("" for neither).
std::string gate_text(const TensorOpDef& def);

namespace detail {
[[noreturn]] void throw_attrs_mismatch();
template <class T>
const void* attrs_tag() {
  static const char tag = 0;
  return &tag;
}
}  // namespace detail

// An op's attributes, saved with its node (an axis, a slope, an offset):
// each op keeps them in a struct of its own, stored with set() or of() and
// read back with get<ThatStruct>() (trivially copyable, at most 32 bytes).
// Reading them as another type is an error, so the compiler and the check
// keep what the op means by each field:
//   struct ReduceAttrs { std::int64_t axis; double scale; bool keepdims; };
//   node.attrs.set(ReduceAttrs{.axis = 1, .scale = 1.0, .keepdims = false});
//   const auto [axis, scale, keepdims] = node.attrs.get<ReduceAttrs>();
class TensorAttrs {
 public:
  template <class T>
  static TensorAttrs of(const T& v) {
    TensorAttrs a;
    a.set(v);
    return a;
  }
  template <class T>
  void set(const T& v) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kBytes,
                  "op attributes: a trivially copyable struct of at most 32 bytes");
    std::memcpy(bytes_, &v, sizeof v);
    tag_ = detail::attrs_tag<T>();
  }
  template <class T>
  T get() const {
    if (tag_ != detail::attrs_tag<T>()) [[unlikely]]
      detail::throw_attrs_mismatch();
    T v;
    std::memcpy(&v, bytes_, sizeof v);
    return v;
  }
  bool empty() const { return tag_ == nullptr; }

 private:
  static constexpr std::size_t kBytes = 32;
  alignas(8) unsigned char bytes_[kBytes] = {};
  const void* tag_ = nullptr;
};

struct TensorNode {
  const TensorOpDef* op = nullptr;
  Shape shape;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::uint8_t n_in = 0;
  std::uint32_t in[3] = {kNone, kNone, kNone};  // tensor inputs
  std::uint32_t scalar_in = kNone;              // a scalar input (Scalar * Tensor)
  std::uint32_t scalar_out = kNone;             // a scalar output (Tensor::item)
  std::uint32_t scalar_mark = 0;                // scalar nodes that existed at creation
  void* value = nullptr;  // owned by value_buf or by the caller (external leaf)
  void* grad = nullptr;   // owned by grad_buf or by the caller; null = all zero
  // A parameter's caller-owned gradient that may not be written yet (see
  // PendingGrad). Null for every other node.
  PendingGrad* pending = nullptr;
  Buffer value_buf, grad_buf, saved;
  TensorAttrs attrs;
  const char* label = nullptr;  // user label (parameter name), for inspection
  std::uint32_t scope = kNone;  // index into Tape::scope_names(), for DOT clusters
  // The gradient for reading (factors written out first), or null when none
  // has reached the node.
  const void* grad_or_null() const;
  Site site;    // the call that created the node
  Site caller;  // the outermost CallSite active then (e.g. model(x)), or unknown
};

}  // namespace tapegrad
