// Function::optimize(): the recorded tape compiled into a replay program
// (program.hpp). Dead nodes go, nodes that no input reaches become numbers,
// equal ops merge, and every tree of single-use ops becomes one statement:
// its ops run in a small scratch area, a local reverse pass over them gives
// one weight per operand, and the global reverse sweep touches only statement
// roots and their weighted operands. Runs of statements of one shape become
// blocks (program_run.cpp runs them).
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/program.hpp"
#include "core/rules.hpp"

namespace tapegrad {
namespace detail {
std::uint32_t tensors_before(const Tape& tape, std::uint32_t r);  // replay.cpp

namespace {

// A statement as emitted: its ops (ext operands as positions in edges) and
// operands, before grouping into blocks.
struct Stmt {
  std::uint32_t root;  // global value index
  std::uint32_t first_op, n_ops, first_edge, n_edges;
};

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
        lpos_(n_, kNone),
        rep_(n_) {
    for (std::uint32_t i = 0; i < n_; ++i) rep_[i] = i;
    for (std::size_t k = 0; k < in.size(); ++k) gid_[in[k].index()] = static_cast<std::uint32_t>(k);
    p_.n_in = static_cast<std::uint32_t>(in.size());
  }

  std::unique_ptr<Program> build() {
    mark_live();
    mark_varying();
    merge_common();
    choose_roots();
    std::uint32_t g = p_.n_in;
    for (std::uint32_t i = 1; i < n_; ++i)
      if (is_root(i)) gid_[i] = g++;
    for (std::uint32_t i = 1; i < n_; ++i)
      if (is_root(i)) emit_statement(i);
    group();
    for (std::size_t c = 0; c < t_.compares().size(); ++c) add_compare(c);
    if (vary_[r_])
      p_.out = gid_[r_];
    else
      p_.out_const = t_.scalar_value(r_);
    p_.val.assign(g, 0.0);
    p_.adj.assign(g, 0.0);
    std::size_t slots = 1, widest = 1;
    for (const Block& b : p_.blocks) {
      slots = std::max<std::size_t>(slots, std::size_t{b.n_ops} * b.count);
      widest = std::max<std::size_t>(widest, b.count);
    }
    for (auto* v : {&p_.lv, &p_.lda, &p_.ldb, &p_.ladj}) v->assign(slots, 0.0);
    for (auto* v : {&p_.ta, &p_.tb}) v->assign(widest, 0.0);
    p_.ones.assign(widest, 1.0);
    p_.w.assign(w0_, 0.0);  // per-operand weights of the blocks that are not fixed
    p_.run.reserve(p_.ops.size());
    for (const POp& o : p_.ops) p_.run.push_back(runner(o.op));
    p_.stats.statements = static_cast<std::uint32_t>(stmts_.size());
    p_.stats.edges = static_cast<std::uint32_t>(edges_.size());
    p_.stats.blocks = static_cast<std::uint32_t>(p_.blocks.size());
    p_.stats.comparisons = static_cast<std::uint32_t>(p_.cmps.size());
    return std::make_unique<Program>(std::move(p_));
  }

 private:
  ScalarOp op(std::uint32_t i) const { return t_.scalar_op(i); }
  // Inputs, after merge_common(): the first of equal ops stands for all.
  std::uint32_t in_a(std::uint32_t i) const { return rep_[t_.scalar_input_a(i)]; }
  std::uint32_t in_b(std::uint32_t i) const {
    return scalar_op_binary(op(i)) ? rep_[t_.scalar_edges(i).b] : 0;
  }
  bool gone(std::uint32_t i) const { return rep_[i] != i; }  // merged into an earlier op
  bool local(std::uint32_t j) const { return j && vary_[j] && is_op(op(j)) && !root_[j]; }
  bool is_root(std::uint32_t i) const { return vary_[i] && is_op(op(i)) && root_[i] && !gone(i); }

  // Common subexpressions: a varying op with the same code, the same inputs
  // (after merging) and the same numbers as an earlier one computes the same
  // value, bit for bit, so it becomes that one, and its uses add up on it
  // (as CppAD's optimize does). add and mul are commutative in IEEE
  // arithmetic, so their operands are ordered first.
  struct Key {
    ScalarOp op;
    std::uint32_t a, b;
    std::uint64_t na, nb;
    std::uint64_t wa = 0, wb = 0;  // a lin node's weights (as bits)
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      std::uint64_t h = static_cast<std::uint64_t>(k.op) * 0x9e3779b97f4a7c15ull;
      for (std::uint64_t v : {std::uint64_t{k.a}, std::uint64_t{k.b}, k.na, k.nb, k.wa, k.wb})
        h = (h ^ v) * 0xff51afd7ed558ccdull + (h >> 29);
      return static_cast<std::size_t>(h);
    }
  };
  void merge_common() {
    std::unordered_map<Key, std::uint32_t, KeyHash> seen;
    seen.reserve(n_);
    for (std::uint32_t i = 1; i < n_; ++i) {
      if (!live_[i] || !vary_[i] || !is_op(op(i))) continue;
      const bool binary = scalar_op_binary(op(i));
      // An input that is a number (on the node or folded) is keyed by its bits.
      const auto side = [&](std::uint32_t j, int slot, std::uint32_t& at, std::uint64_t& num) {
        if (j && vary_[j]) return void(at = j);
        const double v = j ? t_.scalar_value(j) : t_.scalar_operand(i, slot);
        at = 0, std::memcpy(&num, &v, sizeof v);
      };
      Key k{op(i), 0, 0, 0, 0};
      side(in_a(i), 0, k.a, k.na);
      if (binary) side(in_b(i), 1, k.b, k.nb);
      if (k.op == ScalarOp::lin) {
        const ScalarEdges& e = t_.scalar_edges(i);
        std::memcpy(&k.wa, &e.da, sizeof e.da);
        std::memcpy(&k.wb, &e.db, sizeof e.db);
      }
      if ((k.op == ScalarOp::add || k.op == ScalarOp::mul) &&
          std::pair(k.b, k.nb) < std::pair(k.a, k.na))
        std::swap(k.a, k.b), std::swap(k.na, k.nb);
      const auto [it, fresh] = seen.try_emplace(k, i);
      if (!fresh) rep_[i] = it->second, ++p_.stats.merged;
    }
    r_ = rep_[r_];
  }

  void mark_live() {
    live_[r_] = 1;
    for (const CompareRecord& c : t_.compares())
      if (c.node < n_) live_[c.node] = 1;
    for (std::uint32_t i = n_; i-- > 1;) {
      if (!live_[i]) continue;
      const ScalarOp o = op(i);
      if (o == ScalarOp::leaf || o == ScalarOp::constant) continue;
      if (o == ScalarOp::item)
        throw Error(fmt::format(
            "Function::optimize: scalar node s{} is a '{}' node, which has no forward rule", i,
            scalar_op_name(o)));
      if (o == ScalarOp::custom)
        throw Error(fmt::format(
            "Function::optimize: scalar node s{} calls a user function, which the compiled "
            "program does not run; replay it with gradient() without optimize()",
            i));
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
      if (!live_[i] || !vary_[i] || op(i) == ScalarOp::leaf || gone(i)) continue;
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
      if (!live_[i] || !vary_[i] || !is_op(op(i)) || gone(i)) continue;
      if (uses_[i] != 1) root_[i] = 1;
      // Where two sizeable trees join, the smaller (or the second) becomes a
      // statement of its own. Repeated subtrees (a layer's neurons, each
      // weighted into the next layer's sum) then stay whole and alike, and
      // group into blocks, instead of being swallowed by one long tree and
      // cut at the cap into pieces of irregular shapes.
      const std::uint32_t a = in_a(i), b = in_b(i);
      if (a != b && local(a) && local(b) && std::min(size_[a], size_[b]) >= kJoinCut)
        root_[size_[a] < size_[b] ? a : b] = 1;
      std::uint32_t size = op(i) == ScalarOp::lin ? kLinOps : 1;
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
    POp o{op(i), kNum, kNum, false, false, 0, 0, 0.0};
    // Where operand j (a varying node) is: a local op, or an edge slot.
    const auto place = [&](std::uint32_t j, Ref& k, std::uint32_t& idx) {
      if (local(j)) {
        k = kLocal, idx = lpos_[j];
      } else {
        k = kExt;
        const std::uint32_t g = gid_[j];
        std::uint32_t e = s.first_edge;
        while (e < edges_.size() && edges_[e] != g) ++e;
        if (e == edges_.size()) edges_.push_back(g);
        idx = e - s.first_edge;
      }
    };
    if (op(i) == ScalarOp::lin) return emit_lin(i, s, a, b, place);
    const auto operand = [&](std::uint32_t j, int slot, Ref& k, std::uint32_t& idx) {
      if (j == 0)
        o.num = t_.scalar_operand(i, slot);  // a number kept on the node
      else if (!vary_[j])
        o.num = t_.scalar_value(j);  // folded
      else
        place(j, k, idx);
    };
    operand(a, 0, o.ka, o.a);
    if (scalar_op_binary(op(i))) operand(b, 1, o.kb, o.b);
    lpos_[i] = static_cast<std::uint32_t>(sops_.size()) - s.first_op;
    sops_.push_back(o);
  }

  // A lin node, w_a a + w_b b (+ c), as the ops the program runs: each
  // varying operand times its weight, the products added, then the number
  // (the slot's own, plus any operand folded to a number times its weight).
  // All are linear, so a statement of lin nodes keeps fixed weights.
  template <class Place>
  void emit_lin(std::uint32_t i, const Stmt& s, std::uint32_t a, std::uint32_t b, Place& place) {
    const ScalarEdges& e = t_.scalar_edges(i);
    // Weights of 1 and -1 are a plain add or sub, exactly (1 * x is x): one
    // op, and a running sum stays a chain (Block::chain).
    if (e.da == 1.0 && vary_[a] && (b ? vary_[b] && (e.db == 1.0 || e.db == -1.0) : true)) {
      POp o{ScalarOp::add, kNum, kNum, false, false, 0, 0, b ? 0.0 : e.db};
      if (b && e.db == -1.0) o.op = ScalarOp::sub;
      place(a, o.ka, o.a);
      if (b) place(b, o.kb, o.b);
      lpos_[i] = static_cast<std::uint32_t>(sops_.size()) - s.first_op;
      sops_.push_back(o);
      return;
    }
    double c = 0.0;
    std::uint32_t scaled[2], n = 0;
    const auto term = [&](std::uint32_t j, double w) {
      if (!vary_[j]) return void(c += w * t_.scalar_value(j));
      POp m{ScalarOp::mul, kNum, kNum, false, false, 0, 0, w};
      place(j, m.ka, m.a);
      scaled[n++] = static_cast<std::uint32_t>(sops_.size()) - s.first_op;
      sops_.push_back(m);
    };
    term(a, e.da);
    if (b)
      term(b, e.db);
    else
      c += e.db;
    std::uint32_t at = scaled[0];  // one varying operand at least: i varies
    if (n == 2) {
      sops_.push_back(POp{ScalarOp::add, kLocal, kLocal, false, false, scaled[0], scaled[1], 0.0});
      at = static_cast<std::uint32_t>(sops_.size()) - 1 - s.first_op;
    }
    if (c != 0.0) {  // NaN too
      sops_.push_back(POp{ScalarOp::add, kLocal, kNum, false, false, at, 0, c});
      at = static_cast<std::uint32_t>(sops_.size()) - 1 - s.first_op;
    }
    lpos_[i] = at;
  }

  void emit_statement(std::uint32_t i) {
    Stmt s{gid_[i], static_cast<std::uint32_t>(sops_.size()), 0,
           static_cast<std::uint32_t>(edges_.size()), 0};
    emit_tree(i, s);
    s.n_ops = static_cast<std::uint32_t>(sops_.size()) - s.first_op;
    s.n_edges = static_cast<std::uint32_t>(edges_.size()) - s.first_edge;
    p_.stats.ops += s.n_ops;
    stmts_.push_back(s);
  }

  bool same_shape(const Stmt& x, const Stmt& y) const {
    return x.n_ops == y.n_ops && x.n_edges == y.n_edges &&
           std::equal(sops_.begin() + x.first_op, sops_.begin() + x.first_op + x.n_ops,
                      sops_.begin() + y.first_op);
  }

  // Runs of statements of one shape, none reading a root of its run (roots
  // are numbered in statement order, so that is: every operand below the
  // run's first root), become blocks, their operands laid out slot-major.
  void group() {
    for (std::size_t s = 0; s < stmts_.size();) {
      const Stmt& first = stmts_[s];
      const std::uint32_t cap =
          std::min<std::uint32_t>(kMaxBlock, std::max<std::uint32_t>(1, kBlockSlots / first.n_ops));
      std::size_t end = s + 1;
      while (end < stmts_.size() && end - s < cap && same_shape(first, stmts_[end]) &&
             std::all_of(edges_.begin() + stmts_[end].first_edge,
                         edges_.begin() + stmts_[end].first_edge + stmts_[end].n_edges,
                         [&](std::uint32_t g) { return g < first.root; }))
        ++end;
      // A run whose ends break its ranges (a periodic boundary: the first
      // point reads the last) runs as its middle, with ranges, and the ends
      // alone.
      std::size_t lo = s, hi = end;
      if (!ranges(s, end))
        for (const auto& [l, h] :
             {std::pair(s + 1, end), std::pair(s, end - 1), std::pair(s + 1, end - 1)})
          if (h > l + 1 && ranges(l, h)) {
            lo = l, hi = h;
            break;
          }
      for (std::size_t j = s; j < lo; ++j) emit_block(j, j + 1);
      emit_block(lo, hi);
      for (std::size_t j = hi; j < end; ++j) emit_block(j, j + 1);
      s = end;
    }
  }

  // Operand e of statements s..end-1: evenly spaced values? (*stride)
  bool range(std::size_t s, std::size_t end, std::uint32_t e,
             std::int32_t* stride = nullptr) const {
    const auto at = [&](std::size_t j) {
      return static_cast<std::int64_t>(edges_[stmts_[j].first_edge + e]);
    };
    const std::int64_t d = end - s > 1 ? at(s + 1) - at(s) : 1;
    if (d > INT32_MAX || d < INT32_MIN) return false;
    for (std::size_t j = s + 2; j < end; ++j)
      if (at(j) != at(s) + d * static_cast<std::int64_t>(j - s)) return false;
    if (stride) *stride = static_cast<std::int32_t>(d);
    return true;
  }
  bool ranges(std::size_t s, std::size_t end) const {
    for (std::uint32_t e = 0; e < stmts_[s].n_edges; ++e)
      if (!range(s, end, e)) return false;
    return true;
  }

  // Statements s..end-1, of one shape, as a block.
  void emit_block(std::size_t s, std::size_t end) {
    const Stmt& first = stmts_[s];
    const auto n = static_cast<std::uint32_t>(end - s);
    const POp* shape = sops_.data() + first.first_op;
    const bool fixed = linear(shape, first.n_ops);
    p_.blocks.push_back(Block{static_cast<std::uint32_t>(p_.ops.size()), first.n_ops, first.n_edges,
                              n, first.root,
                              fixed ? static_cast<std::uint32_t>(p_.wfix.size()) : w0_,
                              static_cast<std::uint32_t>(p_.slots.size()), fixed});
    p_.blocks.back().chain = !fixed && n == 1 && chain(shape, first.n_ops, first.n_edges);
    p_.stats.chains += p_.blocks.back().chain;
    if (fixed) {
      fixed_weights(shape, first.n_ops, first.n_edges);
      ++p_.stats.fixed;
    } else {
      w0_ += first.n_edges * n;
    }
    const std::size_t op0 = p_.ops.size();
    p_.ops.insert(p_.ops.end(), shape, shape + first.n_ops);
    // The local reverse runs the ops backwards, b before a: the first to
    // reach each slot assigns.
    std::vector<char> seen(first.n_edges, 0);
    for (std::size_t k = p_.ops.size(); k-- > op0;) {
      POp& o = p_.ops[k];
      if (scalar_op_binary(o.op) && o.kb == kExt && !seen[o.b]) o.first_b = true, seen[o.b] = 1;
      if (o.ka == kExt && !seen[o.a]) o.first_a = true, seen[o.a] = 1;
    }
    for (std::uint32_t e = 0; e < first.n_edges; ++e) {
      std::int32_t stride = 1;
      if (range(s, end, e, &stride)) {
        p_.slots.push_back(Slot{edges_[first.first_edge + e], stride, kNone});
      } else {
        p_.slots.push_back(Slot{kNone, 0, static_cast<std::uint32_t>(p_.edge_to.size())});
        for (std::size_t j = s; j < end; ++j)
          p_.edge_to.push_back(edges_[stmts_[j].first_edge + e]);
      }
    }
  }

  // Whether every op's partials are the same at every point: add, sub, neg,
  // a product with a number, a division by one.
  static bool linear(const POp* o, std::uint32_t n) {
    for (std::uint32_t k = 0; k < n; ++k) {
      const ScalarOp op = o[k].op;
      const bool num = o[k].ka == kNum || o[k].kb == kNum;
      if (op == ScalarOp::add || op == ScalarOp::sub || op == ScalarOp::neg) continue;
      if (op == ScalarOp::mul && num) continue;
      if (op == ScalarOp::div && o[k].kb == kNum) continue;
      return false;
    }
    return true;
  }
  // Whether a statement's shape is a chain: see Block::chain.
  static bool chain(const POp* o, std::uint32_t n, std::uint32_t n_edges) {
    if (n_edges > 2) return false;
    for (std::uint32_t k = 0; k < n; ++k)
      if ((o[k].ka == kLocal && o[k].a + 1 != k) ||
          (scalar_op_binary(o[k].op) && o[k].kb == kLocal && o[k].b + 1 != k))
        return false;
    return true;
  }
  // A linear shape's weights, by one local reverse (at operands of 1: the
  // partials do not depend on them), appended to wfix.
  void fixed_weights(const POp* o, std::uint32_t n, std::uint32_t n_edges) {
    std::vector<double> lv(n), lda(n), ldb(n), ladj(n);
    eval_statement(
        o, n, [](std::uint32_t) { return 1.0; }, lv.data(), lda.data(), ldb.data());
    const std::size_t w0 = p_.wfix.size();
    p_.wfix.resize(w0 + n_edges, 0.0);
    statement_weights(o, n, lda.data(), ldb.data(), ladj.data(), p_.wfix.data() + w0);
  }

  void add_compare(std::size_t c) {
    const CompareRecord& rec = t_.compares()[c];
    const std::uint32_t i = rec.node;
    if (i >= n_) return;
    const std::uint32_t a = in_a(i), b = rep_[t_.scalar_edges(i).b];
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
  std::vector<std::uint32_t> uses_, size_, gid_, lpos_, rep_;
  std::vector<POp> sops_;             // every statement's ops, in statement order
  std::vector<std::uint32_t> edges_;  // every statement's operands
  std::vector<Stmt> stmts_;
  std::uint32_t w0_ = 0;  // weights of the blocks emitted so far
  Program p_;
};

}  // namespace
}  // namespace detail

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

}  // namespace tapegrad
