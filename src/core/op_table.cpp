// What the inspection tools say of each op of the table: gate names and
// the trace's notes, read from the rules (math_rules.hpp).
#include "core/rules.hpp"

namespace tapegrad {

const char* gate_name(Gate g) {
  switch (g) {
    case Gate::distributes:
      return "distributes";
    case Gate::switches:
      return "switches";
    case Gate::routes:
      return "routes";
    case Gate::scales:
      return "scales";
    case Gate::copies:
      return "copies";
    case Gate::none:
      break;
  }
  return "";
}

namespace detail {
namespace {
template <ScalarOp O>
const char* note_of(int slot, double local) {
  using R = Rule<O>;
  if constexpr (requires { R::note_blocked; })
    if (local == 0) return R::note_blocked;
  if constexpr (requires { R::note_b; })
    if (slot == 1) return R::note_b;
  return R::note;
}
}  // namespace

const char* scalar_note(ScalarOp op, int slot, double local) {
  switch (op) {
#define TAPEGRAD_X(name, kind) TAPEGRAD_NOTE_##kind(name)
#define TAPEGRAD_NOTE_structural(name)
#define TAPEGRAD_NOTE_math(name) \
  case ScalarOp::name:           \
    return note_of<ScalarOp::name>(slot, local);
#define TAPEGRAD_NOTE_unary_op(name) TAPEGRAD_NOTE_math(name)
#define TAPEGRAD_NOTE_unary_fn(name) TAPEGRAD_NOTE_math(name)
#define TAPEGRAD_NOTE_binary_op(name) TAPEGRAD_NOTE_math(name)
#define TAPEGRAD_NOTE_binary_fn(name) TAPEGRAD_NOTE_math(name)
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
    default:
      return nullptr;
  }
}
}  // namespace detail

std::string gate_text(const TensorOpDef& def) {
  std::string out;
  if (def.gate != Gate::none) out.append(gate_name(def.gate));
  if (def.note) {
    if (!out.empty()) out.push_back(' ');
    out.append(def.note);
  }
  return out;
}

namespace detail {
void throw_attrs_mismatch() {
  throw Error(
      "tensor op attributes read as a type other than the one the op stored (TensorAttrs::get)");
}
}  // namespace detail

}  // namespace tapegrad
