// VectorFunction: a tape range compiled into a VProgram (vprogram.hpp), and
// the sweeps that run it with a per-thread workspace.
#include "tapegrad/vector_function.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/rules.hpp"
#include "core/vprogram.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {

namespace detail {

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

void zeroed(std::vector<double>& a, std::size_t size) {
  if (a.size() < size) a.resize(size);
  std::fill_n(a.begin(), size, 0.0);
}

namespace {

[[noreturn]] void throw_flip(const VCompare& c, double x, double y) {
  throw BranchChanged(
      fmt::format("replay: the comparison {} {} {}{} was {} when the function was recorded and is "
                  "{} now ({} {} {}), so the recorded branch no longer holds; record the function "
                  "again at this point",
                  c.a_name, compare_symbol(c.how), c.b_name,
                  c.where.site.line() ? " at " + site_str(c.where.site) : std::string(),
                  c.recorded ? "true" : "false", c.recorded ? "false" : "true", x,
                  compare_symbol(c.how), y),
      c.where);
}
}  // namespace

void forward(const VProgram& P, std::span<const double> x, Workspace& ws) {
  const std::uint32_t S = P.slots();
  if (ws.v.size() < S) ws.v.resize(S);
  if (ws.pa.size() < P.ops.size()) ws.pa.resize(P.ops.size()), ws.pb.resize(P.ops.size());
  double* v = ws.v.data();
  v[0] = 0.0;
  std::copy(x.begin(), x.end(), v + 1);
  std::copy(P.numbers.begin(), P.numbers.end(), v + 1 + P.n);
  double* pa = ws.pa.data();
  double* pb = ws.pb.data();
  double* out = v + P.first_op;
  const VInstr* ops = P.ops.data();
  const std::size_t n_ops = P.ops.size();
  for (std::size_t k = 0; k < n_ops; ++k) {
    const VInstr& o = ops[k];
    const double a = v[o.a], b = v[o.b];
    switch (o.op) {
      case ScalarOp::add:
        out[k] = a + b, pa[k] = 1.0, pb[k] = 1.0;
        continue;
      case ScalarOp::sub:
        out[k] = a - b, pa[k] = 1.0, pb[k] = -1.0;
        continue;
      case ScalarOp::mul:
        out[k] = a * b, pa[k] = b, pb[k] = a;
        continue;
      case ScalarOp::lin:
        out[k] = o.p * a + o.q * b, pa[k] = o.p, pb[k] = o.q;
        continue;
      case ScalarOp::custom: {
        const Partials p = user_function_first(o.q, a);
        out[k] = p.v, pa[k] = p.da, pb[k] = 0.0;
        continue;
      }
      default: {
        const Partials p = eval(o.op, a, b);
        out[k] = p.v, pa[k] = p.da, pb[k] = scalar_op_binary(o.op) ? p.db : 0.0;
      }
    }
  }
  for (const VCompare& c : P.compares)
    if (compare_holds(c.how, v[c.a], v[c.b]) != c.recorded) throw_flip(c, v[c.a], v[c.b]);
}

void tangents(const VProgram& P, std::uint32_t k, Workspace& ws) {
  double* t = ws.t.data();
  const double* pa = ws.pa.data();
  const double* pb = ws.pb.data();
  const std::size_t n_ops = P.ops.size();
  for (std::size_t i = 0; i < n_ops; ++i) {
    const VInstr& o = P.ops[i];
    double* ti = t + std::size_t(P.first_op + i) * k;
    const double* ta = t + std::size_t(o.a) * k;
    const double* tb = t + std::size_t(o.b) * k;
    const double da = pa[i], db = pb[i];
    if (std::isfinite(da) && std::isfinite(db)) [[likely]] {
      for (std::uint32_t d = 0; d < k; ++d) ti[d] = da * ta[d] + db * tb[d];
      continue;
    }
    // An infinite partial reaches only the directions that move its operand
    // (0 * inf would put NaN into all the others).
    for (std::uint32_t d = 0; d < k; ++d)
      ti[d] = (ta[d] != 0.0 ? da * ta[d] : 0.0) + (tb[d] != 0.0 ? db * tb[d] : 0.0);
  }
}

void adjoints(const VProgram& P, std::uint32_t k, Workspace& ws) {
  double* g = ws.g.data();
  const double* pa = ws.pa.data();
  const double* pb = ws.pb.data();
  for (std::size_t i = P.ops.size(); i-- > 0;) {
    const VInstr& o = P.ops[i];
    const double* gi = g + std::size_t(P.first_op + i) * k;
    double* ga = g + std::size_t(o.a) * k;
    double* gb = g + std::size_t(o.b) * k;
    const double da = pa[i], db = pb[i];
    if (k == 1) {
      if (gi[0] != 0.0) ga[0] += da * gi[0], gb[0] += db * gi[0];
      continue;
    }
    if (std::isfinite(da) && std::isfinite(db)) [[likely]] {
      for (std::uint32_t d = 0; d < k; ++d) ga[d] += da * gi[d];
      for (std::uint32_t d = 0; d < k; ++d) gb[d] += db * gi[d];
      continue;
    }
    for (std::uint32_t d = 0; d < k; ++d)
      if (gi[d] != 0.0) ga[d] += da * gi[d], gb[d] += db * gi[d];
  }
}

void second_adjoints(const VProgram& P, std::uint32_t k, Workspace& ws) {
  const double* v = ws.v.data();
  const double* t = ws.t.data();
  double* g = ws.g.data();
  double* h = ws.h.data();
  const double* pa = ws.pa.data();
  const double* pb = ws.pb.data();
  for (std::size_t i = P.ops.size(); i-- > 0;) {
    const VInstr& o = P.ops[i];
    const std::uint32_t s = P.first_op + static_cast<std::uint32_t>(i);
    const double gi = g[s];
    if (gi != 0.0) g[o.a] += pa[i] * gi, g[o.b] += pb[i] * gi;
    const double* hi = h + std::size_t(s) * k;
    double* ha = h + std::size_t(o.a) * k;
    double* hb = h + std::size_t(o.b) * k;
    if (std::isfinite(pa[i]) && std::isfinite(pb[i])) [[likely]] {
      for (std::uint32_t d = 0; d < k; ++d) ha[d] += pa[i] * hi[d];
      for (std::uint32_t d = 0; d < k; ++d) hb[d] += pb[i] * hi[d];
    } else {
      for (std::uint32_t d = 0; d < k; ++d)
        if (hi[d] != 0.0) ha[d] += pa[i] * hi[d], hb[d] += pb[i] * hi[d];
    }
    if (gi == 0.0) continue;
    const double* ta = t + std::size_t(o.a) * k;
    const double* tb = t + std::size_t(o.b) * k;
    if (o.op == ScalarOp::custom) {
      const double c = gi * user_function_second(o.q, v[o.a], v[s]);
      for (std::uint32_t d = 0; d < k; ++d) ha[d] += c * ta[d];
      continue;
    }
    if (o.op == ScalarOp::mul) {  // the commonest curved op: s.ab = 1
      for (std::uint32_t d = 0; d < k; ++d) ha[d] += gi * tb[d];
      for (std::uint32_t d = 0; d < k; ++d) hb[d] += gi * ta[d];
      continue;
    }
    if (!curved(o.op)) continue;
    const Second c = second(o.op, v[o.a], v[o.b], v[s]);
    const double aa = gi * c.aa, ab = gi * c.ab, bb = gi * c.bb;
    for (std::uint32_t d = 0; d < k; ++d) ha[d] += aa * ta[d] + ab * tb[d];
    if (scalar_op_binary(o.op))
      for (std::uint32_t d = 0; d < k; ++d) hb[d] += ab * ta[d] + bb * tb[d];
  }
}

}  // namespace detail

VectorFunction::VectorFunction(const Tape& tape, std::span<const Scalar> inputs,
                               std::span<const Scalar> outputs)
    : prog_(std::make_unique<detail::VProgram>()) {
  using detail::VCompare;
  using detail::VInstr;
  detail::VProgram& P = *prog_;
  if (outputs.empty()) throw Error("VectorFunction: no outputs given");
  P.n = static_cast<std::uint32_t>(inputs.size());
  // tape index -> value slot; inputs first
  std::unordered_map<std::uint32_t, std::uint32_t> slot;
  std::uint32_t lo = ~0u, hi = 0;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Scalar& x = inputs[k];
    x.checked("VectorFunction input");
    if (&x.tape() != &tape)
      throw Error(fmt::format("VectorFunction: input {} lives on another tape", k));
    if (x.op() != ScalarOp::leaf)
      throw Error(
          fmt::format("VectorFunction: input {} (s{}) is a '{}' node; inputs must be variables "
                      "(tape.variable)",
                      k, x.index(), scalar_op_name(x.op())));
    if (!slot.emplace(x.index(), static_cast<std::uint32_t>(k + 1)).second)
      throw Error(fmt::format("VectorFunction: input {} (s{}) is given twice", k, x.index()));
    lo = std::min(lo, x.index());
  }
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const Scalar& y = outputs[k];
    y.checked("VectorFunction output");
    if (&y.tape() != &tape)
      throw Error(fmt::format("VectorFunction: output {} lives on another tape", k));
    hi = std::max(hi, y.index() + 1);
  }
  if (inputs.empty()) lo = hi;
  for (std::uint32_t c = 0; c < tape.compares().size(); ++c)
    if (tape.compares()[c].node >= lo) hi = std::max(hi, tape.compares()[c].node + 1);
  const auto in_range = [&](std::uint32_t i) { return i >= lo && i < hi; };
  const auto is_input = [&](std::uint32_t i) { return in_range(i) && slot.count(i) != 0; };
  const auto uses_b = [&](ScalarOp op) {
    return scalar_op_binary(op) || op == ScalarOp::lin || op == ScalarOp::compare;
  };
  // Which nodes depend on an input (forward), then which of those reach an
  // output or a comparison (backward).
  const std::uint32_t span_n = hi > lo ? hi - lo : 0;
  std::vector<std::uint8_t> dep(span_n, 0), live(span_n, 0);
  const auto depends = [&](std::uint32_t i) { return i != 0 && in_range(i) && dep[i - lo]; };
  for (std::uint32_t i = lo; i < hi; ++i) {
    const ScalarOp op = tape.scalar_op(i);
    if (is_input(i)) {
      dep[i - lo] = 1;
      continue;
    }
    if (op == ScalarOp::leaf || op == ScalarOp::constant || op == ScalarOp::sink) continue;
    const ScalarEdges& e = tape.scalar_edges(i);
    if (op == ScalarOp::item) {  // a tensor's element: replayable only when before the inputs
      dep[i - lo] = 2;
      continue;
    }
    dep[i - lo] = depends(e.a_op & Tape::kIndexMask) || (uses_b(op) && depends(e.b));
  }
  for (const Scalar& y : outputs)
    if (depends(y.index())) live[y.index() - lo] = 1;
  std::vector<std::uint32_t> compares;  // the checked ones, by index into tape.compares()
  for (std::uint32_t c = 0; c < tape.compares().size(); ++c) {
    const std::uint32_t i = tape.compares()[c].node;
    if (depends(i)) live[i - lo] = 1, compares.push_back(c);
  }
  std::uint32_t n_ops = 0;
  for (std::uint32_t i = hi; i-- > lo;) {
    if (!live[i - lo] || is_input(i)) continue;
    const ScalarOp op = tape.scalar_op(i);
    if (dep[i - lo] == 2)
      throw Error(fmt::format(
          "VectorFunction: node s{} takes an element of a tensor recorded after the inputs; "
          "vector functions replay scalar nodes only (use tg::jacobian for tensor code)",
          i));
    if (op != ScalarOp::compare) ++n_ops;
    const ScalarEdges& e = tape.scalar_edges(i);
    const std::uint32_t a = e.a_op & Tape::kIndexMask;
    if (depends(a)) live[a - lo] = 1;
    if (uses_b(op) && depends(e.b)) live[e.b - lo] = 1;
  }
  // Numbers: every operand that is neither an input nor a live op.
  const auto number_for = [&](std::uint32_t node, double num) -> std::uint32_t {
    if (node != 0) {
      if (auto it = slot.find(node); it != slot.end()) return it->second;
      if (depends(node)) return kNone;  // an op: its slot comes later
      num = tape.scalar_value(node);
    }
    P.numbers.push_back(num);
    const std::uint32_t s = P.n + static_cast<std::uint32_t>(P.numbers.size());
    if (node != 0) slot.emplace(node, s);
    return s;
  };
  struct Pending {
    std::uint32_t node, a, b;  // slots, kNone while the operand is an op
    VInstr ins;
  };
  std::vector<Pending> ops;
  ops.reserve(n_ops);
  std::uint32_t one = 0;
  for (std::uint32_t i = lo; i < hi; ++i) {
    if (!live[i - lo] || is_input(i)) continue;
    const ScalarOp op = tape.scalar_op(i);
    if (op == ScalarOp::compare) continue;
    const ScalarEdges& e = tape.scalar_edges(i);
    const std::uint32_t a = e.a_op & Tape::kIndexMask;
    Pending p{i, number_for(a, e.da), 0, VInstr{op, 0, 0, 0.0, 0.0}};
    if (op == ScalarOp::lin) {
      p.ins.p = e.da, p.ins.q = e.db;
      if (e.b == 0) {  // p a + q: q times a slot that holds 1
        if (!one) one = number_for(0, 1.0);
        p.b = one;
      } else {
        p.b = number_for(e.b, 0.0);
      }
    } else if (op == ScalarOp::custom) {
      p.ins.q = e.db;  // the function's id
    } else if (scalar_op_binary(op)) {
      p.b = number_for(e.b, e.db);
    }
    ops.push_back(p);
  }
  std::vector<std::uint32_t> out_num(outputs.size(), kNone);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const std::uint32_t i = outputs[k].index();
    if (!depends(i)) out_num[k] = number_for(i, 0.0);
  }
  std::vector<std::array<std::uint32_t, 2>> cmp_num;
  for (std::uint32_t c : compares) {
    const ScalarEdges& e = tape.scalar_edges(tape.compares()[c].node);
    cmp_num.push_back({number_for(e.a_op & Tape::kIndexMask, e.da), number_for(e.b, e.db)});
  }
  // The ops' slots follow the numbers.
  P.first_op = P.n + 1 + static_cast<std::uint32_t>(P.numbers.size());
  for (std::size_t k = 0; k < ops.size(); ++k)
    slot[ops[k].node] = P.first_op + static_cast<std::uint32_t>(k);
  const auto resolve = [&](std::uint32_t s, std::uint32_t node) {
    return s == kNone ? slot.at(node) : s;
  };
  P.ops.reserve(ops.size());
  for (Pending& p : ops) {
    const ScalarEdges& e = tape.scalar_edges(p.node);
    p.ins.a = resolve(p.a, e.a_op & Tape::kIndexMask);
    p.ins.b = resolve(p.b, e.b);
    P.ops.push_back(p.ins);
  }
  for (std::size_t k = 0; k < outputs.size(); ++k)
    P.out.push_back(out_num[k] != kNone ? out_num[k] : slot.at(outputs[k].index()));
  const auto name_of = [&](std::uint32_t node, double num) {
    if (node == 0) return fmt::format("{}", num);
    if (const std::string* l = tape.label(NodeKind::scalar, node)) return *l;
    return fmt::format("s{}", node);
  };
  for (std::size_t c = 0; c < compares.size(); ++c) {
    const CompareRecord& r = tape.compares()[compares[c]];
    const ScalarEdges& e = tape.scalar_edges(r.node);
    const std::uint32_t a = e.a_op & Tape::kIndexMask;
    P.compares.push_back(VCompare{r.how, resolve(cmp_num[c][0], a), resolve(cmp_num[c][1], e.b),
                                  tape.scalar_value(r.node) != 0.0, r, name_of(a, e.da),
                                  name_of(e.b, e.db)});
  }
}

VectorFunction::VectorFunction(VectorFunction&&) noexcept = default;
VectorFunction& VectorFunction::operator=(VectorFunction&&) noexcept = default;
VectorFunction::~VectorFunction() = default;

std::size_t VectorFunction::inputs() const { return prog_->n; }
std::size_t VectorFunction::outputs() const { return prog_->out.size(); }
std::size_t VectorFunction::operations() const { return prog_->ops.size(); }

namespace {
void check_size(const char* what, const char* name, std::size_t got, std::size_t want) {
  if (got != want)
    throw Error(
        fmt::format("VectorFunction::{}: {} has {} entries, expected {}", what, name, got, want));
}
void copy_outputs(const detail::VProgram& P, const detail::Workspace& ws, std::span<double> y,
                  const char* what) {
  if (y.empty()) return;
  check_size(what, "y", y.size(), P.out.size());
  for (std::size_t k = 0; k < P.out.size(); ++k) y[k] = ws.v[P.out[k]];
}
}  // namespace

void VectorFunction::values(std::span<const double> x, std::span<double> y) const {
  check_size("values", "x", x.size(), prog_->n);
  check_size("values", "y", y.size(), prog_->out.size());
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(*prog_, x, ws);
  copy_outputs(*prog_, ws, y, "values");
}

void VectorFunction::jvp(std::span<const double> x, std::span<const double> v, std::span<double> jv,
                         std::span<double> y) const {
  const detail::VProgram& P = *prog_;
  check_size("jvp", "x", x.size(), P.n);
  check_size("jvp", "v", v.size(), P.n);
  check_size("jvp", "jv", jv.size(), P.out.size());
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  detail::zeroed(ws.t, P.slots());
  std::copy(v.begin(), v.end(), ws.t.begin() + 1);
  detail::tangents(P, 1, ws);
  for (std::size_t k = 0; k < P.out.size(); ++k) jv[k] = ws.t[P.out[k]];
  copy_outputs(P, ws, y, "jvp");
}

void VectorFunction::vjp(std::span<const double> x, std::span<const double> u, std::span<double> uj,
                         std::span<double> y) const {
  const detail::VProgram& P = *prog_;
  check_size("vjp", "x", x.size(), P.n);
  check_size("vjp", "u", u.size(), P.out.size());
  check_size("vjp", "uj", uj.size(), P.n);
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  detail::zeroed(ws.g, P.slots());
  for (std::size_t k = 0; k < P.out.size(); ++k) ws.g[P.out[k]] += u[k];
  detail::adjoints(P, 1, ws);
  std::copy_n(ws.g.begin() + 1, P.n, uj.begin());
  copy_outputs(P, ws, y, "vjp");
}

void VectorFunction::jacobian(std::span<const double> x, std::span<double> J,
                              std::span<double> y) const {
  const detail::VProgram& P = *prog_;
  const std::size_t n = P.n, m = P.out.size();
  check_size("jacobian", "x", x.size(), n);
  check_size("jacobian", "J", J.size(), n * m);
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  constexpr std::uint32_t kMax = 16;
  const std::size_t S = P.slots();
  if (n <= m) {  // forward: columns, kMax at a time
    for (std::size_t c0 = 0; c0 < n; c0 += kMax) {
      const std::uint32_t k = static_cast<std::uint32_t>(std::min<std::size_t>(kMax, n - c0));
      detail::zeroed(ws.t, S * k);
      for (std::uint32_t d = 0; d < k; ++d) ws.t[(1 + c0 + d) * k + d] = 1.0;
      detail::tangents(P, k, ws);
      for (std::size_t r = 0; r < m; ++r)
        for (std::uint32_t d = 0; d < k; ++d) J[r * n + c0 + d] = ws.t[P.out[r] * k + d];
    }
  } else {  // reverse: rows, kMax at a time
    for (std::size_t r0 = 0; r0 < m; r0 += kMax) {
      const std::uint32_t k = static_cast<std::uint32_t>(std::min<std::size_t>(kMax, m - r0));
      detail::zeroed(ws.g, S * k);
      for (std::uint32_t d = 0; d < k; ++d) ws.g[P.out[r0 + d] * k + d] += 1.0;
      detail::adjoints(P, k, ws);
      for (std::uint32_t d = 0; d < k; ++d)
        for (std::size_t c = 0; c < n; ++c) J[(r0 + d) * n + c] = ws.g[(1 + c) * k + d];
    }
  }
  copy_outputs(P, ws, y, "jacobian");
}

void VectorFunction::hvp(std::span<const double> x, std::span<const double> w,
                         std::span<const double> v, std::span<double> hv,
                         std::span<double> grad) const {
  const detail::VProgram& P = *prog_;
  check_size("hvp", "x", x.size(), P.n);
  check_size("hvp", "w", w.size(), P.out.size());
  check_size("hvp", "v", v.size(), P.n);
  check_size("hvp", "hv", hv.size(), P.n);
  if (!grad.empty()) check_size("hvp", "grad", grad.size(), P.n);
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  const std::size_t S = P.slots();
  detail::zeroed(ws.t, S);
  std::copy(v.begin(), v.end(), ws.t.begin() + 1);
  detail::tangents(P, 1, ws);
  detail::zeroed(ws.g, S);
  for (std::size_t k = 0; k < P.out.size(); ++k) ws.g[P.out[k]] += w[k];
  detail::zeroed(ws.h, S);
  detail::second_adjoints(P, 1, ws);
  std::copy_n(ws.h.begin() + 1, P.n, hv.begin());
  if (!grad.empty()) std::copy_n(ws.g.begin() + 1, P.n, grad.begin());
}

void VectorFunction::hessian(std::span<const double> x, std::span<const double> w,
                             std::span<double> H) const {
  const detail::VProgram& P = *prog_;
  const std::size_t n = P.n;
  check_size("hessian", "x", x.size(), n);
  check_size("hessian", "w", w.size(), P.out.size());
  check_size("hessian", "H", H.size(), n * n);
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  constexpr std::uint32_t kMax = 16;
  const std::size_t S = P.slots();
  for (std::size_t c0 = 0; c0 < n; c0 += kMax) {
    const std::uint32_t k = static_cast<std::uint32_t>(std::min<std::size_t>(kMax, n - c0));
    detail::zeroed(ws.t, S * k);
    for (std::uint32_t d = 0; d < k; ++d) ws.t[(1 + c0 + d) * k + d] = 1.0;
    detail::tangents(P, k, ws);
    detail::zeroed(ws.g, S);
    for (std::size_t r = 0; r < P.out.size(); ++r) ws.g[P.out[r]] += w[r];
    detail::zeroed(ws.h, S * k);
    detail::second_adjoints(P, k, ws);
    for (std::size_t r = 0; r < n; ++r)
      for (std::uint32_t d = 0; d < k; ++d) H[r * n + c0 + d] = ws.h[(1 + r) * k + d];
  }
}

}  // namespace tapegrad
