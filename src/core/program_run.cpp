// Running the replay program (program.hpp): the forward over blocks, with
// each statement's local reverse, and the reverse sweep over statements.
#include <algorithm>

#include "core/program.hpp"
#include "core/rules.hpp"

namespace tapegrad::detail {

namespace {
// One op over n statements: values and local partials.
template <ScalarOp O>
void run_op(const double* x, const double* y, double* v, double* da, double* db, std::uint32_t n) {
  for (std::uint32_t j = 0; j < n; ++j) {
    Partials p;
    if constexpr (scalar_op_binary(O))
      p = first2<O>(x[j], y[j]);
    else
      p = first1<O>(x[j]);
    v[j] = p.v, da[j] = p.da, db[j] = p.db;
  }
}
}  // namespace

RunFn runner(ScalarOp op) {
  switch (op) {
#define TAPEGRAD_X(name, kind) TAPEGRAD_RUN_##kind(name)
#define TAPEGRAD_RUN_structural(name)
#define TAPEGRAD_RUN_math(name) \
  case ScalarOp::name:          \
    return run_op<ScalarOp::name>;
#define TAPEGRAD_RUN_unary_op(name) TAPEGRAD_RUN_math(name)
#define TAPEGRAD_RUN_unary_fn(name) TAPEGRAD_RUN_math(name)
#define TAPEGRAD_RUN_binary_op(name) TAPEGRAD_RUN_math(name)
#define TAPEGRAD_RUN_binary_fn(name) TAPEGRAD_RUN_math(name)
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
    default:
      return nullptr;
  }
}

void Program::run_block(const Block& b, bool weights) {
  const std::uint32_t n = b.count;
  const POp* o = ops.data() + b.first_op;
  const Slot* sl = slots.data() + b.slot0;
  for (std::uint32_t k = 0; k < b.n_ops; ++k) {
    const double* x = operand(o[k].ka, o[k].a, o[k].num, n, sl, ta.data());
    const double* y = operand(o[k].kb, o[k].b, o[k].num, n, sl, tb.data());
    const std::size_t at = std::size_t{k} * n;
    double* v = k + 1 == b.n_ops ? val.data() + b.root0 : lv.data() + at;
    run[b.first_op + k](x, y, v, lda.data() + at, ldb.data() + at, n);
  }
  std::fill_n(adj.begin() + b.root0, n, 0.0);
  if (!weights) return;
  double* wb = w.data() + b.w0;
  for (std::uint32_t k = b.n_ops; k-- > 0;) {
    const std::size_t at = std::size_t{k} * n;
    const double* g = k + 1 == b.n_ops ? ones.data() : ladj.data() + at;
    const auto send = [&](Ref kind, std::uint32_t i, bool first, const double* d) {
      if (kind == kNum) return;
      double* t = (kind == kLocal ? ladj.data() : wb) + std::size_t{i} * n;
      if (kind == kLocal || first)  // the first to reach it: assigned, not added
        for (std::uint32_t j = 0; j < n; ++j) t[j] = times(d[j], g[j]);
      else
        for (std::uint32_t j = 0; j < n; ++j) t[j] += times(d[j], g[j]);
    };
    // b before a, the order Builder::emit_block marked first writes in (x * x
    // on one slot: b assigns, a adds).
    if (scalar_op_binary(o[k].op)) send(o[k].kb, o[k].b, o[k].first_b, ldb.data() + at);
    send(o[k].ka, o[k].a, o[k].first_a, lda.data() + at);
  }
}

void Program::run_single(const Block& b, bool weights) {
  const POp* o = ops.data() + b.first_op;
  const Slot* sl = slots.data() + b.slot0;  // one statement: every slot is strided
  const auto slot_value = [&](std::uint32_t i) { return val[sl[i].base]; };
  adj[b.root0] = 0.0;
  if (weights && b.chain) {
    double w2[2];
    if (chain_statement(o, b.n_ops, slot_value, val.data() + b.root0, w2)) {
      std::copy_n(w2, b.n_edges, w.data() + b.w0);
      return;
    }
  }
  eval_statement(o, b.n_ops, slot_value, lv.data(), lda.data(), ldb.data());
  val[b.root0] = lv[b.n_ops - 1];
  if (!weights) return;
  double* wb = w.data() + b.w0;
  std::fill_n(wb, b.n_edges, 0.0);
  statement_weights(o, b.n_ops, lda.data(), ldb.data(), ladj.data(), wb);
}

bool Program::forward(std::span<const double> x, bool weights, std::uint32_t* first_flip) {
  std::copy(x.begin(), x.end(), val.begin());
  for (const Block& b : blocks) {
    if (b.count == 1)
      run_single(b, weights && !b.fixed);
    else
      run_block(b, weights && !b.fixed);
  }
  // Every value is final now (each slot is written once), so the
  // comparisons are checked after the whole forward.
  *first_flip = kNone;
  for (const PCompare& c : cmps) {
    const double a = c.a == kNone ? c.num : val[c.a], b = c.b == kNone ? c.num : val[c.b];
    if (compare_holds(c.how, a, b) != c.recorded) {
      *first_flip = c.rec;
      return false;
    }
  }
  return true;
}

void Program::reverse() {
  std::fill_n(adj.begin(), n_in, 0.0);  // the roots' were zeroed by forward()
  if (out == kNone) return;
  adj[out] = 1.0;
  for (std::size_t i = blocks.size(); i-- > 0;) {
    const Block& b = blocks[i];
    const double* g = adj.data() + b.root0;
    if (b.count == 1) {  // one statement: its slots are its operands
      const double gi = *g;
      if (gi == 0.0) continue;  // as the sweep: no 0 * inf from an unused path
      const double* wb = (b.fixed ? wfix.data() : w.data()) + b.w0;
      const Slot* sl = slots.data() + b.slot0;
      for (std::uint32_t e = 0; e < b.n_edges; ++e) adj[sl[e].base] += wb[e] * gi;
      continue;
    }
    if (b.fixed) {
      reverse_fixed(b, g);
      continue;
    }
    const double* wb = w.data() + b.w0;
    for (std::uint32_t e = 0; e < b.n_edges; ++e, wb += b.count)
      send(slots[b.slot0 + e], wb, false, g, b.count);
  }
}

void Program::send(const Slot& s, const double* w, bool shared, const double* g, std::uint32_t n) {
  const auto wj = [&](std::uint32_t j) { return shared ? w[0] : w[j]; };
  if (!s.strided()) {
    const std::uint32_t* to = edge_to.data() + s.at;
    for (std::uint32_t j = 0; j < n; ++j) adj[to[j]] += times(wj(j), g[j]);
  } else if (s.stride == 1) {
    if (!shared) return add_weighted(adj.data() + s.base, w, g, n);
    double* __restrict t = adj.data() + s.base;  // never overlaps g
    for (std::uint32_t j = 0; j < n; ++j) t[j] += times(w[0], g[j]);
  } else if (s.stride == 0) {
    double sum = 0.0;
    for (std::uint32_t j = 0; j < n; ++j) sum += times(wj(j), g[j]);
    adj[s.base] += sum;
  } else {
    double* t = adj.data() + s.base;
    for (std::uint32_t j = 0; j < n; ++j) t[std::ptrdiff_t{s.stride} * j] += times(wj(j), g[j]);
  }
}

void Program::reverse_fixed(const Block& b, const double* g) {
  for (std::uint32_t e = 0; e < b.n_edges; ++e)
    send(slots[b.slot0 + e], wfix.data() + b.w0 + e, true, g, b.count);
}

}  // namespace tapegrad::detail
