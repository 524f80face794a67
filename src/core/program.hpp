#pragma once
// Private: the replay program that Function::optimize() compiles a tape into
// (program.cpp builds it, program_run.cpp runs it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "core/rules.hpp"
#include "tapegrad/replay.hpp"

namespace tapegrad::detail {

enum Ref : std::uint8_t { kLocal, kExt, kNum };
constexpr std::uint32_t kMaxStatement = 64;  // ops per statement (scratch size)
constexpr std::uint32_t kJoinCut = 8;        // trees this size joining: the smaller is cut
constexpr std::uint32_t kBlockSlots = 4096;  // ops x statements per block (scratch size)
constexpr std::uint32_t kMaxBlock = 256;     // statements per block
constexpr std::uint32_t kLinOps = 4;         // program ops of one lin node at most

// One op of a statement's shape. A local operand is the result of an earlier
// op of the same statement (its position); an external one is an operand slot
// of the statement (0..n_edges), the same slot for every statement of a block.
struct POp {
  ScalarOp op;
  Ref ka, kb;
  // The first write of the local reverse into an edge slot assigns its
  // weight; later ones add (set by Builder::emit_block).
  bool first_a = false, first_b = false;
  std::uint32_t a, b;  // local position, or edge slot, by ka / kb
  double num;          // the number operand (at most one per op)
  bool operator==(const POp& o) const {
    return op == o.op && ka == o.ka && kb == o.kb && a == o.a && b == o.b &&
           std::memcmp(&num, &o.num, sizeof num) == 0;
  }
};
// Consecutive statements of one shape (the same ops on the same kinds of
// operands and numbers) of which none reads another's root run together:
// each op of the shape is one loop over the block's statements, with no
// per-op dispatch and no branches, which the compiler vectorises where the
// op allows. Statement j's root is root0 + j; its operand in slot e is
// described by slots[slot0 + e], and its weight is w[w0 + e * count + j].
// A block whose ops are all linear with fixed coefficients (add, sub, neg,
// products with and division by numbers) has weights that do not depend on
// the point: they are computed once, by optimize(), and shared by its
// statements (wfix[w0 + e]); replay then skips its local reverse.
// A chain (a single statement whose every local operand is the op just
// before, with at most two operand slots: a running sum or product, a
// Horner polynomial) gets its weights by forward mode instead
// (chain_statement).
struct Block {
  std::uint32_t first_op, n_ops, n_edges, count, root0, w0, slot0;
  bool fixed;
  bool chain = false;
};
// Where the operands of one slot of a block are: base + j * stride for
// statement j when they are evenly spaced (stride 1: a stencil's
// neighbours, the previous step's points, read and updated as plain vectors;
// 0: one value that every statement reads, a layer's input; other: a
// column of a weight matrix), else edge_to[at + j].
struct Slot {
  std::uint32_t base;
  std::int32_t stride;
  std::uint32_t at;  // kNone when strided
  bool strided() const { return at == kNone; }
};
struct PCompare {
  std::uint32_t rec;  // index into Tape::compares()
  Compare how;
  bool recorded;       // the outcome on the tape
  std::uint32_t a, b;  // global value index, or kNone for the number
  double num;
};

using RunFn = void (*)(const double*, const double*, double*, double*, double*, std::uint32_t);
// The loop that runs op over n statements (values and local partials), or
// null for codes that are not ops.
RunFn runner(ScalarOp op);

// d * g, and 0 where g is 0 (as the sweep: no 0 * inf from an unused path).
inline double times(double d, double g) { return g == 0.0 ? 0.0 : d * g; }

// One statement, op by op: values and local partials into lv, lda, ldb;
// value(i) is the value of external slot i.
template <class Value>
void eval_statement(const POp* o, std::uint32_t n, Value value, double* lv, double* lda,
                    double* ldb) {
  const auto ref = [&](Ref k, std::uint32_t i, double num) {
    return k == kLocal ? lv[i] : (k == kExt ? value(i) : num);
  };
  for (std::uint32_t k = 0; k < n; ++k) {
    const double a = ref(o[k].ka, o[k].a, o[k].num), b = ref(o[k].kb, o[k].b, o[k].num);
    // mul and add as plain branches before the table's switch (see chain_statement)
    const Partials p = o[k].op == ScalarOp::mul   ? first2<ScalarOp::mul>(a, b)
                       : o[k].op == ScalarOp::add ? first2<ScalarOp::add>(a, b)
                                                  : eval(o[k].op, a, b);
    lv[k] = p.v, lda[k] = p.da, ldb[k] = p.db;
  }
}
// Its local reverse from the root: the weight of each external slot added
// into w (zeroed by the caller); ladj is scratch of n.
inline void statement_weights(const POp* o, std::uint32_t n, const double* lda, const double* ldb,
                              double* ladj, double* w) {
  ladj[n - 1] = 1.0;
  for (std::uint32_t k = n; k-- > 0;) {
    const double ga = times(lda[k], ladj[k]), gb = times(ldb[k], ladj[k]);
    if (o[k].ka == kLocal)
      ladj[o[k].a] = ga;
    else if (o[k].ka == kExt)
      w[o[k].a] += ga;
    if (o[k].kb == kLocal)
      ladj[o[k].b] = gb;
    else if (o[k].kb == kExt)
      w[o[k].b] += gb;
  }
}

// A chain statement's value and the weights of its (at most two) slots in
// one forward pass that carries the running value's partials with respect
// to both slots (forward mode), all in registers: no per-op arrays and no
// local reverse, whose stores and reloads are a chain's critical path.
// x(i) is the value of slot i. Returns false, with nothing written, when a
// weight is not finite: forward mode cannot follow the local reverse's rule
// that a zero adjoint sends nothing (0 * inf), so the caller takes the
// general path there. Finite weights are the same sums of products of
// partials as the local reverse's, added in another order (an infinite or
// NaN partial anywhere on the way leaves a weight NaN or infinite: NaN
// sticks, and an infinity can only leave through 0 * inf = NaN).
template <class Value>
bool chain_statement(const POp* o, std::uint32_t n, Value x, double* v_out, double* w) {
  double v = 0, t0 = 0, t1 = 0;
  for (std::uint32_t k = 0; k < n; ++k) {
    const POp& p = o[k];
    double a = p.num, a0 = 0, a1 = 0, b = p.num, b0 = 0, b1 = 0;
    if (p.ka == kLocal)
      a = v, a0 = t0, a1 = t1;
    else if (p.ka == kExt)
      a = x(p.a), a0 = p.a == 0, a1 = p.a == 1;
    if (p.kb == kLocal)
      b = v, b0 = t0, b1 = t1;
    else if (p.kb == kExt)
      b = x(p.b), b0 = p.b == 0, b1 = p.b == 1;
    // The ops of arithmetic chains tested first, as plain branches: through
    // the switch's jump table, an alternating add/mul chain (Horner's rule,
    // the benchmark's chain) ran 4.5x slower on an AMD EPYC, its one
    // indirect jump mispredicted on most ops (docs/performance.md).
    const Partials q = p.op == ScalarOp::mul   ? first2<ScalarOp::mul>(a, b)
                       : p.op == ScalarOp::add ? first2<ScalarOp::add>(a, b)
                                               : eval(p.op, a, b);
    v = q.v;
    // Plain products: where the local reverse's rule would have dropped a
    // 0 * inf, this gives NaN, which the check below sends to that path.
    t0 = q.da * a0 + q.db * b0;
    t1 = q.da * a1 + q.db * b1;
  }
  if (!std::isfinite(t0) || !std::isfinite(t1)) return false;
  *v_out = v;
  w[0] = t0, w[1] = t1;
  return true;
}

struct Program {
  std::vector<POp> ops;    // the shape of each block
  std::vector<RunFn> run;  // ops[k]'s loop
  std::vector<Block> blocks;
  std::vector<Slot> slots;
  std::vector<std::uint32_t> edge_to;  // operands of the slots that are not consecutive
  std::vector<double> w;               // each operand's weight, from the last forward
  std::vector<double> wfix;            // the weights of fixed blocks, per slot
  std::vector<double> val, adj;        // inputs first, then statement roots
  std::vector<double> lv, lda, ldb, ladj, ta, tb, ones;
  std::vector<PCompare> cmps;
  std::uint32_t n_in = 0, out = kNone;
  double out_const = 0;
  OptimizeStats stats;

  // The n values of operand (k, i) of a block's ops.
  const double* operand(Ref k, std::uint32_t i, double num, std::uint32_t n, const Slot* sl,
                        double* tmp) const {
    if (k == kLocal) return lv.data() + std::size_t{i} * n;
    if (k == kExt) {
      const Slot& s = sl[i];
      if (s.strided()) {
        if (s.stride == 1) return val.data() + s.base;
        const double* v = val.data() + s.base;
        for (std::uint32_t j = 0; j < n; ++j) tmp[j] = v[std::ptrdiff_t{s.stride} * j];
      } else {
        const std::uint32_t* t = edge_to.data() + s.at;
        for (std::uint32_t j = 0; j < n; ++j) tmp[j] = val[t[j]];
      }
    } else {
      std::fill_n(tmp, n, num);
    }
    return tmp;
  }
  // t += w * g over a slot of consecutive operands; t never overlaps g (a
  // block does not read its own roots).
  static void add_weighted(double* __restrict t, const double* __restrict w,
                           const double* __restrict g, std::uint32_t n) {
    for (std::uint32_t j = 0; j < n; ++j) t[j] += times(w[j], g[j]);
  }
  // adj[operand j of slot s] += w[j] * g[j] (w[j] = w[0] for all j when
  // `shared`, the weight of a fixed block).
  void send(const Slot& s, const double* w, bool shared, const double* g, std::uint32_t n);

  // One block: its values, and with weights each statement's local reverse,
  // which leaves in w the weight of each operand (the sum over the paths
  // from the root of the products of the partials along them). The last op
  // writes the roots' values in place; their adjoints are zeroed here too,
  // while the lines are in cache (reverse() adds into them).
  void run_block(const Block& b, bool weights);

  // A block of one statement (a chain's link, a sum of varying terms): the
  // same, without loops of one or calls per op.
  void run_single(const Block& b, bool weights);

  // The forward; with weights, also each statement's local reverse.
  bool forward(std::span<const double> x, bool weights, std::uint32_t* first_flip);

  // The reverse sweep over statements: each root's adjoint times its
  // operands' weights. No statement of a block reads another's root, so a
  // block's roots have their final adjoints when its turn comes, and its
  // statements may go in any order: slot by slot, all statements at once.
  // (Computing the weights here instead, from the stored values, saves
  // storing them but costs more than it saves: measured slower on all three
  // benchmark problems.)
  void reverse();

  void reverse_fixed(const Block& b, const double* g);
};

}  // namespace tapegrad::detail
