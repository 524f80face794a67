// Function::optimize(): the recorded tape compiled into a replay program.
// Dead nodes go, nodes that no input reaches become numbers, and every tree
// of single-use ops becomes one statement: its ops run in a small scratch
// area (L1-resident), a local reverse pass over them gives one weight per
// operand of the statement, and the global reverse sweep touches only
// statement roots and their weighted operands.
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/rules.hpp"
#include "tapegrad/replay.hpp"

namespace tapegrad {
namespace detail {
std::uint32_t tensors_before(const Tape& tape, std::uint32_t r);  // replay.cpp
bool holds(Compare how, double a, double b);                      // replay.cpp

namespace {
enum Ref : std::uint8_t { kLocal, kExt, kNum };
constexpr std::uint32_t kMaxStatement = 64;  // ops per statement (scratch size)

}  // namespace

struct POp {
  ScalarOp op;
  Ref ka, kb;
  std::uint32_t a, b;  // local position, or edge slot, by ka / kb
  double num;          // the number operand (at most one per op)
};
struct Stmt {
  std::uint32_t root;  // global value index
  std::uint32_t first_op, n_ops, first_edge, n_edges;
};
struct PCompare {
  std::uint32_t rec;  // index into Tape::compares()
  Compare how;
  bool recorded;       // the outcome on the tape
  std::uint32_t a, b;  // global value index, or kNone for the number
  double num;
};

struct Program {
  std::vector<POp> ops;
  std::vector<Stmt> stmts;
  std::vector<std::uint32_t> edge_to;  // global value index of each statement operand
  std::vector<double> w;               // its weight, from the last forward
  std::vector<double> val, adj;        // inputs first, then statement roots
  std::vector<double> lv, lda, ldb, ladj;
  std::vector<PCompare> cmps;
  std::uint32_t n_in = 0, out = kNone;
  double out_const = 0;
  OptimizeStats stats;

  double ref(Ref k, std::uint32_t i, double num) const {
    return k == kLocal ? lv[i] : (k == kExt ? val[edge_to[i]] : num);
  }

  // The forward; with weights, also each statement's local reverse.
  bool forward(std::span<const double> x, bool weights, std::uint32_t* first_flip) {
    std::copy(x.begin(), x.end(), val.begin());
    for (const Stmt& s : stmts) {
      const POp* o = ops.data() + s.first_op;
      for (std::uint32_t k = 0; k < s.n_ops; ++k) {
        const Partials p =
            eval(o[k].op, ref(o[k].ka, o[k].a, o[k].num), ref(o[k].kb, o[k].b, o[k].num));
        lv[k] = p.v, lda[k] = p.da, ldb[k] = p.db;
      }
      val[s.root] = lv[s.n_ops - 1];
      if (!weights) continue;
      std::fill_n(w.begin() + s.first_edge, s.n_edges, 0.0);
      std::fill_n(ladj.begin(), s.n_ops - 1, 0.0);
      ladj[s.n_ops - 1] = 1.0;
      for (std::uint32_t k = s.n_ops; k-- > 0;) {
        const double g = ladj[k];
        if (g == 0.0) continue;  // as the sweep: no 0 * inf from an unused path
        if (o[k].ka == kLocal)
          ladj[o[k].a] += lda[k] * g;
        else if (o[k].ka == kExt)
          w[o[k].a] += lda[k] * g;
        if (o[k].kb == kLocal)
          ladj[o[k].b] += ldb[k] * g;
        else if (o[k].kb == kExt)
          w[o[k].b] += ldb[k] * g;
      }
    }
    // Every value is final now (each slot is written once), so the
    // comparisons are checked after the whole forward.
    *first_flip = kNone;
    for (const PCompare& c : cmps) {
      const double a = c.a == kNone ? c.num : val[c.a], b = c.b == kNone ? c.num : val[c.b];
      if (holds(c.how, a, b) != c.recorded) {
        *first_flip = c.rec;
        return false;
      }
    }
    return true;
  }

  void reverse() {
    std::fill(adj.begin(), adj.end(), 0.0);
    if (out == kNone) return;
    adj[out] = 1.0;
    for (std::size_t i = stmts.size(); i-- > 0;) {
      const Stmt& s = stmts[i];
      const double g = adj[s.root];
      if (g == 0.0) continue;
      for (std::uint32_t e = s.first_edge, end = e + s.n_edges; e < end; ++e)
        adj[edge_to[e]] += w[e] * g;
    }
  }
};

namespace {

bool is_op(ScalarOp op) {
  return op != ScalarOp::sink && op != ScalarOp::leaf && op != ScalarOp::constant &&
         op != ScalarOp::compare;
}

class Builder {
 public:
  Builder(const Tape& t, const std::vector<Scalar>& in, std::uint32_t r)
      : t_(t),
        n_(r + 1),
        r_(r),
        live_(n_),
        vary_(n_),
        root_(n_),
        uses_(n_),
        size_(n_),
        gid_(n_, kNone),
        lpos_(n_, kNone) {
    for (std::size_t k = 0; k < in.size(); ++k) gid_[in[k].index()] = static_cast<std::uint32_t>(k);
    p_.n_in = static_cast<std::uint32_t>(in.size());
  }

  std::unique_ptr<Program> build() {
    mark_live();
    mark_varying();
    choose_roots();
    std::uint32_t g = p_.n_in;
    for (std::uint32_t i = 1; i < n_; ++i)
      if (is_root(i)) gid_[i] = g++;
    for (std::uint32_t i = 1; i < n_; ++i)
      if (is_root(i)) emit_statement(i);
    for (std::size_t c = 0; c < t_.compares().size(); ++c) add_compare(c);
    if (vary_[r_])
      p_.out = gid_[r_];
    else
      p_.out_const = t_.scalar_value(r_);
    p_.val.assign(g, 0.0);
    p_.adj.assign(g, 0.0);
    p_.w.assign(p_.edge_to.size(), 0.0);
    std::uint32_t longest = 1;
    for (const Stmt& s : p_.stmts) longest = std::max(longest, s.n_ops);
    for (auto* v : {&p_.lv, &p_.lda, &p_.ldb, &p_.ladj}) v->assign(longest, 0.0);
    p_.stats.ops = static_cast<std::uint32_t>(p_.ops.size());
    p_.stats.statements = static_cast<std::uint32_t>(p_.stmts.size());
    p_.stats.edges = static_cast<std::uint32_t>(p_.edge_to.size());
    p_.stats.comparisons = static_cast<std::uint32_t>(p_.cmps.size());
    return std::make_unique<Program>(std::move(p_));
  }

 private:
  ScalarOp op(std::uint32_t i) const { return t_.scalar_op(i); }
  std::uint32_t in_a(std::uint32_t i) const { return t_.scalar_input_a(i); }
  std::uint32_t in_b(std::uint32_t i) const {
    return scalar_op_binary(op(i)) ? t_.scalar_edges(i).b : 0;
  }
  bool local(std::uint32_t j) const { return j && vary_[j] && is_op(op(j)) && !root_[j]; }
  bool is_root(std::uint32_t i) const { return vary_[i] && is_op(op(i)) && root_[i]; }

  void mark_live() {
    live_[r_] = 1;
    for (const CompareRecord& c : t_.compares())
      if (c.node < n_) live_[c.node] = 1;
    for (std::uint32_t i = n_; i-- > 1;) {
      if (!live_[i]) continue;
      const ScalarOp o = op(i);
      if (o == ScalarOp::leaf || o == ScalarOp::constant) continue;
      if (o == ScalarOp::custom || o == ScalarOp::from_tensor)
        throw Error(fmt::format(
            "Function::optimize: scalar node s{} is a '{}' node, which has no forward rule", i,
            scalar_op_name(o)));
      if (const std::uint32_t a = in_a(i)) live_[a] = 1;
      if (const std::uint32_t b = in_b(i)) live_[b] = 1;
    }
  }

  void mark_varying() {
    for (std::uint32_t i = 1; i < n_; ++i) {
      const ScalarOp o = op(i);
      if (!live_[i]) {
        if (is_op(o)) ++p_.stats.recorded, ++p_.stats.dead;
        continue;
      }
      if (o == ScalarOp::leaf) {
        vary_[i] = gid_[i] != kNone;
      } else if (o != ScalarOp::constant) {
        const std::uint32_t a = in_a(i), b = in_b(i);
        vary_[i] = (a && vary_[a]) || (b && vary_[b]);
      }
      if (is_op(o)) {
        ++p_.stats.recorded;
        if (!vary_[i]) ++p_.stats.folded;
      }
    }
  }

  // A varying op is a statement root unless exactly one op uses it; trees
  // longer than the scratch area are cut by making children roots.
  void choose_roots() {
    for (std::uint32_t i = 1; i < n_; ++i) {
      if (!live_[i] || !vary_[i] || op(i) == ScalarOp::leaf) continue;
      const bool cmp = op(i) == ScalarOp::compare;
      for (std::uint32_t j : {in_a(i), in_b(i)}) {
        if (!j || !vary_[j]) continue;
        if (cmp)
          root_[j] = 1;
        else
          ++uses_[j];
      }
    }
    root_[r_] = 1;
    for (std::uint32_t i = 1; i < n_; ++i) {
      if (!live_[i] || !vary_[i] || !is_op(op(i))) continue;
      if (uses_[i] != 1) root_[i] = 1;
      std::uint32_t size = 1;
      for (std::uint32_t j : {in_a(i), in_b(i)})
        if (local(j)) size += size_[j];
      if (size > kMaxStatement) {
        for (std::uint32_t j : {in_a(i), in_b(i)})
          if (local(j)) root_[j] = 1;
        size = 1;
      }
      size_[i] = size;
    }
  }

  // Post-order over the tree of local ops under i.
  void emit_tree(std::uint32_t i, const Stmt& s) {
    const std::uint32_t a = in_a(i), b = in_b(i);
    if (local(a)) emit_tree(a, s);
    if (b != a && local(b)) emit_tree(b, s);
    POp o{op(i), kNum, kNum, 0, 0, 0.0};
    const auto operand = [&](std::uint32_t j, int slot, Ref& k, std::uint32_t& idx) {
      if (j == 0) {
        o.num = t_.scalar_operand(i, slot);  // a number kept on the node
      } else if (!vary_[j]) {
        o.num = t_.scalar_value(j);  // folded
      } else if (local(j)) {
        k = kLocal, idx = lpos_[j];
      } else {
        k = kExt;
        const std::uint32_t g = gid_[j];
        std::uint32_t e = s.first_edge;
        while (e < p_.edge_to.size() && p_.edge_to[e] != g) ++e;
        if (e == p_.edge_to.size()) p_.edge_to.push_back(g);
        idx = e;
      }
    };
    operand(a, 0, o.ka, o.a);
    if (scalar_op_binary(op(i))) operand(b, 1, o.kb, o.b);
    lpos_[i] = static_cast<std::uint32_t>(p_.ops.size()) - s.first_op;
    p_.ops.push_back(o);
  }

  void emit_statement(std::uint32_t i) {
    Stmt s{gid_[i], static_cast<std::uint32_t>(p_.ops.size()), 0,
           static_cast<std::uint32_t>(p_.edge_to.size()), 0};
    emit_tree(i, s);
    s.n_ops = static_cast<std::uint32_t>(p_.ops.size()) - s.first_op;
    s.n_edges = static_cast<std::uint32_t>(p_.edge_to.size()) - s.first_edge;
    p_.stmts.push_back(s);
  }

  void add_compare(std::size_t c) {
    const CompareRecord& rec = t_.compares()[c];
    const std::uint32_t i = rec.node;
    if (i >= n_) return;
    const std::uint32_t a = in_a(i), b = t_.scalar_edges(i).b;
    if (!(a && vary_[a]) && !(b && vary_[b])) return;  // fixed: it cannot flip
    PCompare pc{
        static_cast<std::uint32_t>(c), rec.how, t_.scalar_value(i) != 0.0, kNone, kNone, 0.0};
    const auto side = [&](std::uint32_t j, int slot, std::uint32_t& g) {
      if (j && vary_[j])
        g = gid_[j];
      else
        pc.num = j ? t_.scalar_value(j) : t_.scalar_operand(i, slot);
    };
    side(a, 0, pc.a);
    side(b, 1, pc.b);
    p_.cmps.push_back(pc);
  }

  const Tape& t_;
  std::uint32_t n_, r_;
  std::vector<char> live_, vary_, root_;
  std::vector<std::uint32_t> uses_, size_, gid_, lpos_;
  Program p_;
};

}  // namespace
}  // namespace detail

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

OptimizeStats Function::optimize() {
  out_.checked("Function::optimize");
  if (t_hi_ > 0)
    throw Error(fmt::format(
        "Function::optimize: the function reads {} tensor node{}; the optimiser compiles pure "
        "scalar tapes (replay without optimize() covers tensors)",
        t_hi_, t_hi_ == 1 ? "" : "s"));
  prog_ = detail::Builder(*tape_, in_, out_.index()).build();
  return prog_->stats;
}

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
