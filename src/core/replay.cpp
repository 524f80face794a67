// Replay: the recorded forward run again from the tape alone, and the
// recorded comparisons checked against the new values. (Recording lives in
// tape.cpp, the reverse sweep in sweep.cpp.)
#include "tapegrad/replay.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/program.hpp"
#include "core/rules.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/tensor.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {

const char* compare_symbol(Compare c) {
  static constexpr const char* symbols[] = {"<", "<=", ">", ">=", "==", "!="};
  return symbols[static_cast<int>(c)];
}

bool compare_holds(Compare how, double a, double b) {
  switch (how) {
    case Compare::lt:
      return a < b;
    case Compare::le:
      return a <= b;
    case Compare::gt:
      return a > b;
    case Compare::ge:
      return a >= b;
    case Compare::eq:
      return a == b;
    case Compare::ne:
      return a != b;
  }
  return false;
}

bool Tape::record_compare(Compare how, std::uint32_t a, std::uint32_t b, double c, Site where) {
  check_owner("compare");
  const double x = a ? scalar_value(a) : c, y = b ? scalar_value(b) : c;
  const bool outcome = compare_holds(how, x, y);
  if (!grad_enabled_) return outcome;  // nothing to replay under NoGrad
  // The number, if any, rides in the sink input's slot; the other slot's
  // partial is 0 (a comparison passes no gradient).
  const std::uint32_t i =
      push_scalar(ScalarOp::compare, a, b, a ? 0.0 : c, b ? 0.0 : c, outcome ? 1.0 : 0.0, where);
  compares_.push_back({i, how, where});
  return outcome;
}

std::string ReplayStatus::describe(const Tape& tape) const {
  if (ok()) return {};
  const CompareRecord& c = tape.compares()[first];
  const ScalarEdges& e = tape.scalar_edges(c.node);
  const auto operand_name = [&](std::uint32_t in, int slot) {
    if (in == 0) return fmt::format("{}", tape.scalar_operand(c.node, slot));
    if (const std::string* l = tape.label(NodeKind::scalar, in)) return *l;
    return fmt::format("s{}", in);
  };
  const double x = tape.scalar_operand(c.node, 0), y = tape.scalar_operand(c.node, 1);
  const bool was = tape.scalar_value(c.node) != 0.0;
  std::string out = fmt::format(
      "replay: the comparison {} {} {}{} was {} when the tape was recorded and is {} now ({} {} "
      "{}), so the recorded branch no longer holds",
      operand_name(tape.scalar_input_a(c.node), 0), compare_symbol(c.how), operand_name(e.b, 1),
      c.site.line() ? " at " + site_str(c.site) : std::string(), was ? "true" : "false",
      was ? "false" : "true", x, compare_symbol(c.how), y);
  if (flipped > 1) out += fmt::format(" ({} comparisons flipped in all)", flipped);
  return out + "; record the function again at this point";
}

// One pass in creation order over scalar nodes [lo, hi): each op's value and
// partials from its inputs' current values, with the same rules as recording
// (scalar.hpp), so a replay at the recorded point reproduces the tape bit for
// bit. Inputs that are the sink are plain numbers kept in their slot; those
// slots are left alone.
template <bool Checked>
void Tape::replay_scalars(std::uint32_t lo, std::uint32_t hi, ReplayStatus& st, std::size_t& cmp) {
  using namespace detail;
  ScalarEdges* const e = scalars_.edges();
  double* const v = scalars_.values();
  for (std::uint32_t i = lo; i < hi; ++i) {
    ScalarEdges& n = e[i];
    const std::uint32_t a = n.a_op & kIndexMask, b = n.b;
    const double x = a ? v[a] : n.da, y = b ? v[b] : n.db;
    const auto op = static_cast<ScalarOp>(n.a_op >> kIndexBits);
    Partials p;
    // mul and add first, as plain branches, before the switch's one
    // indirect jump, which predicts mixed op sequences badly on some CPUs
    // (det replay 16% faster on an AMD EPYC; docs/performance.md).
    if (op == ScalarOp::mul) {
      p = first2<ScalarOp::mul>(x, y);
    } else if (op == ScalarOp::add) {
      v[i] = x + y;  // partials 1 and 1 do not change
      if constexpr (Checked) check_scalar_forward(i);
      continue;
    } else
      switch (op) {
        case ScalarOp::sink:
        case ScalarOp::leaf:
        case ScalarOp::constant:
        case ScalarOp::item:  // set by its item node's forward
          continue;
        case ScalarOp::sub:
          v[i] = x - y;
          if constexpr (Checked) check_scalar_forward(i);
          continue;
        case ScalarOp::lin:  // fixed weights: only the value changes
          v[i] = lin_value(x, y, n.da, n.db, b != 0);
          if constexpr (Checked) check_scalar_forward(i);
          continue;
        case ScalarOp::compare: {
          while (compares_[cmp].node < i) ++cmp;
          const bool now = compare_holds(compares_[cmp].how, x, y);
          if (now != (v[i] != 0.0)) {
            if (st.flipped++ == 0) st.first = static_cast<std::uint32_t>(cmp);
          }
          continue;
        }
        case ScalarOp::custom:  // a user's function (userfn.hpp), its id in the number slot
          p = user_function_first(n.db, x);
          break;
        default:
          p = eval(op, x, y);
      }
    v[i] = p.v;
    if (a) n.da = p.da;
    if (b) n.db = p.db;
    if constexpr (Checked) check_scalar_forward(i);
  }
}

ReplayStatus Tape::replay() {
  return replay(scalars_.size(), static_cast<std::uint32_t>(tnodes_.size()));
}

ReplayStatus Tape::replay(std::uint32_t s_hi, std::uint32_t t_hi) {
  check_owner("replay");
  if (s_hi > scalars_.size() || t_hi > tnodes_.size())
    throw Error(
        fmt::format("replay: range of {} scalar and {} tensor nodes lies beyond the tape "
                    "({} and {})",
                    s_hi, t_hi, scalars_.size(), tnodes_.size()));
  ReplayStatus st;
  std::size_t cmp = 0;
  const auto scalars = anomaly_ ? &Tape::replay_scalars<true> : &Tape::replay_scalars<false>;
  std::uint32_t s = 1;
  for (std::uint32_t t = 0; t < t_hi; ++t) {
    TensorNode& n = tnodes_[t];
    if (n.scalar_mark > s) {
      const std::uint32_t e = std::min(n.scalar_mark, s_hi);
      (this->*scalars)(s, e, st, cmp);
      s = e;
    }
    if (!n.op->forward) {
      if (n.op->backward)
        throw Error(fmt::format(
            "replay: tensor node t{} ({}) has no forward rule, so it cannot be replayed{}", t,
            n.op->name,
            origin(NodeKind::tensor, t).empty() ? "" : "; " + origin(NodeKind::tensor, t)));
      continue;  // a leaf or a constant: its value is the caller's
    }
    n.op->forward(*this, t);
    if (anomaly_) [[unlikely]]
      check_tensor_forward(t);
  }
  if (s < s_hi) (this->*scalars)(s, s_hi, st, cmp);
  return st;
}

namespace detail {
// How many tensor nodes precede scalar node r (their scalar mark is <= r).
std::uint32_t tensors_before(const Tape& tape, std::uint32_t r) {
  std::uint32_t lo = 0, hi = static_cast<std::uint32_t>(tape.tensor_count());
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (tape.tensor_node(mid).scalar_mark <= r)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
}  // namespace detail

void Tape::sweep_from(std::uint32_t r) {
  check_owner("backward");
  const std::uint32_t s_hi = r + 1;
  if (detail::tensors_before(*this, r) > 0) {  // tensor gradients live in buffers: the general path
    zero_grad();
    backward(Scalar(*this, r));
    return;
  }
  double* g = scalar_adjoints();
  std::fill(g, g + s_hi, 0.0);
  g[r] = 1.0;
  if (anomaly_)
    sweep_scalars_checked(1, s_hi);
  else
    sweep_scalars(1, s_hi);
  swept_s_ = std::max(swept_s_, s_hi);
}

// ---- Function ----

void Function::set_inputs(std::span<const double> x, const char* what) {
  if (x.size() != in_.size())
    throw Error(
        fmt::format("Function::{}: {} values given for {} inputs", what, x.size(), in_.size()));
  out_.checked("Function");  // the tape was not cleared under us
  for (std::size_t k = 0; k < x.size(); ++k) tape_->set_scalar_value(in_[k].index(), x[k]);
}

double Function::value(std::span<const double> x) {
  set_inputs(x, "value");
  if (prog_) return run_program(x, {}, false);
  const ReplayStatus st = tape_->replay(s_hi_, t_hi_);
  if (!st.ok()) throw BranchChanged(st.describe(*tape_), tape_->compares()[st.first]);
  return tape_->scalar_value(out_.index());
}

ReplayStatus Function::try_gradient(std::span<const double> x, std::span<double> grad,
                                    double* value) {
  set_inputs(x, "gradient");
  if (grad.size() != in_.size())
    throw Error(fmt::format("Function::gradient: room for {} gradient entries given for {} inputs",
                            grad.size(), in_.size()));
  if (prog_) {
    const double v = run_program(x, grad, true);
    if (value) *value = v;
    return {};
  }
  const ReplayStatus st = tape_->replay(s_hi_, t_hi_);
  tape_->sweep_from(out_.index());
  const double* g = tape_->scalar_adjoints();
  for (std::size_t k = 0; k < in_.size(); ++k) grad[k] = g[in_[k].index()];
  if (value) *value = tape_->scalar_value(out_.index());
  return st;
}

double Function::gradient(std::span<const double> x, std::span<double> grad) {
  double v = 0;
  const ReplayStatus st = try_gradient(x, grad, &v);
  if (!st.ok()) throw BranchChanged(st.describe(*tape_), tape_->compares()[st.first]);
  return v;
}

void Function::replay_checked() {
  const ReplayStatus st = tape_->replay(s_hi_, t_hi_);
  if (!st.ok()) throw BranchChanged(st.describe(*tape_), tape_->compares()[st.first]);
}

double Function::jvp(std::span<const double> x, std::span<const double> v, double* derivative) {
  set_inputs(x, "jvp");
  replay_checked();
  const double d = tapegrad::jvp({out_}, std::vector<Ref>(in_.begin(), in_.end()), v)[0];
  if (derivative) *derivative = d;
  return tape_->scalar_value(out_.index());
}

namespace {
void check_room(const char* what, const char* name, std::size_t got, std::size_t want) {
  if (got != want)
    throw Error(fmt::format("Function::{}: room for {} entries in {}, which needs {}", what, got,
                            name, want));
}
}  // namespace

double Function::hvp(std::span<const double> x, std::span<const double> v, std::span<double> hv,
                     std::span<double> grad) {
  set_inputs(x, "hvp");
  check_room("hvp", "hv", hv.size(), in_.size());
  if (!grad.empty()) check_room("hvp", "grad", grad.size(), in_.size());
  replay_checked();
  const std::vector<double> r = tapegrad::hvp(out_, std::vector<Ref>(in_.begin(), in_.end()), v);
  std::copy(r.begin(), r.end(), hv.begin());
  for (std::size_t k = 0; k < grad.size(); ++k) grad[k] = in_[k].grad();
  return tape_->scalar_value(out_.index());
}

double Function::hessian(std::span<const double> x, std::span<double> H, std::span<double> grad) {
  set_inputs(x, "hessian");
  check_room("hessian", "H", H.size(), in_.size() * in_.size());
  if (!grad.empty()) check_room("hessian", "grad", grad.size(), in_.size());
  replay_checked();
  const std::vector<double> r = tapegrad::hessian(out_, std::vector<Ref>(in_.begin(), in_.end()));
  std::copy(r.begin(), r.end(), H.begin());
  for (std::size_t k = 0; k < grad.size(); ++k) grad[k] = in_[k].grad();
  return tape_->scalar_value(out_.index());
}

// ---- Function: construction, and the optimised path (program.hpp) ----

Function::Function(Tape& tape, std::vector<Scalar> inputs, Scalar output)
    : tape_(&tape), in_(std::move(inputs)), out_(output) {
  out_.checked("Function output");
  if (&out_.tape() != &tape) throw Error("Function: the output lives on another tape");
  for (std::size_t k = 0; k < in_.size(); ++k) {
    const Scalar& x = in_[k];
    x.checked("Function input");
    if (&x.tape() != &tape) throw Error(fmt::format("Function: input {} lives on another tape", k));
    if (x.op() != ScalarOp::leaf)
      throw Error(fmt::format(
          "Function: input {} (s{}) is a '{}' node; inputs must be variables (tape.variable)", k,
          x.index(), scalar_op_name(x.op())));
  }
  s_hi_ = out_.index() + 1;
  t_hi_ = detail::tensors_before(tape, out_.index());
}

Function::Function(Function&&) noexcept = default;
Function& Function::operator=(Function&&) noexcept = default;
Function::~Function() = default;

// The optimised path of value() and gradient(); on a flipped comparison it
// replays the tape itself, which names the comparison with the new values.
double Function::run_program(std::span<const double> x, std::span<double> grad, bool want_grad) {
  std::uint32_t flip = kNone;
  if (!prog_->forward(x, want_grad, &flip)) {
    ReplayStatus st = tape_->replay(s_hi_, t_hi_);
    if (st.ok()) st.flipped = 1, st.first = flip;
    throw BranchChanged(st.describe(*tape_), tape_->compares()[st.first]);
  }
  if (want_grad) {
    prog_->reverse();
    std::copy_n(prog_->adj.begin(), grad.size(), grad.begin());
  }
  return prog_->out == kNone ? prog_->out_const : prog_->val[prog_->out];
}

}  // namespace tapegrad
