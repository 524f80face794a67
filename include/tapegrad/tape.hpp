#pragma once
// The tape: one Wengert list holding scalar and tensor nodes in creation
// order. Creation order is a topological order, so backward() is a plain
// reverse loop; nothing in the sweep recurses.
//
// Scalar nodes are stored as a struct of arrays: 24 bytes of edges (two input
// indices, two local partials, the op code packed in the top bits of the first
// index), 8 bytes of value and 8 bytes of adjoint: 40 bytes per binary op and
// no heap allocation per node. The local partials are computed in the forward
// pass, so the sweep is `adj[in] += partial * adj[out]`, the upstream x local
// rule made literal.
//
// Tensor nodes hold their value buffer, a lazily allocated gradient buffer and
// a pointer to their op's definition, whose backward rule lives next to the
// forward code in src/ops/. Each tensor node remembers how many scalar nodes
// existed when it was created, which interleaves the two lists in one sweep.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tapegrad/dtype.hpp"
#include "tapegrad/error.hpp"
#include "tapegrad/memory.hpp"
#include "tapegrad/op_table.hpp"
#include "tapegrad/pending_grad.hpp"
#include "tapegrad/shape.hpp"
#include "tapegrad/site.hpp"
#include "tapegrad/storage.hpp"
#include "tapegrad/tensor_node.hpp"

namespace tapegrad {

class Scalar;
class Tensor;
class Tape;
class Tangents;  // higher.hpp

namespace detail {
struct HigherOrder;
}

// How a recorded comparison compares (see replay.hpp).
enum class Compare : std::uint8_t { lt, le, gt, ge, eq, ne };
const char* compare_symbol(Compare c);
// Whether `a c b` holds (recording, replay and compiled programs all decide by it).
bool compare_holds(Compare c, double a, double b);
struct CompareRecord {
  std::uint32_t node;  // the compare node
  Compare how;
  Site site;  // the user's line
};
struct ReplayStatus;

// A position on the tape, for rewinding to it (see Tape::rewind).
struct Mark {
  std::uint32_t scalars = 0, tensors = 0, generation = 0;
};

class Tape {
 public:
  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Leaves. A variable takes gradients; a constant does not.
  Scalar variable(double v, Site where = Site::current());
  Scalar constant(double v, Site where = Site::current());

  // Reverse sweep from a root. Gradients accumulate into every node reached,
  // and across calls until zero_grad(), as in PyTorch. Calling backward again
  // over nodes already swept is allowed and adds the gradient once more: the
  // already-propagated adjoints of interior nodes are set aside during the new
  // sweep, so nothing is counted twice.
  void backward(const Scalar& root);
  void backward(const Tensor& root);                      // root must have 1 element
  void backward(const Tensor& root, const Tensor& seed);  // seed: same shape as root

  // Sets every gradient on the tape to zero (including external leaves').
  void zero_grad();
  // Drops every node, keeps the memory for the next step, and makes every
  // existing handle stale (using one throws).
  void clear();
  // Drops the nodes recorded after `m`. Handles to nodes below the lowest mark
  // rewound to since the last clear() stay valid; all others become stale.
  Mark mark() const;
  void rewind(const Mark& m);

  // Anomaly detection (off by default): every forward value and every
  // gradient of the sweep is checked for NaN and infinity, and the first one
  // throws an error naming the node, its op, its shape, its scope and the
  // source line that created it (scalar nodes keep their line only while
  // detection is on; tensor nodes always do).
  bool anomaly_enabled() const { return anomaly_; }
  void set_anomaly_enabled(bool on) {
    anomaly_ = on;
    scalars_.set_special(!grad_enabled_ || anomaly_);
  }
  void check_scalar_forward(std::uint32_t s) const;
  void check_tensor_forward(std::uint32_t t) const;

  // Called by the backward sweep as it passes each tensor leaf that takes
  // gradients: every rule that adds to the leaf's gradient has run by then,
  // so the gradient is final for this sweep. Data-parallel training sends a
  // parameter's gradient from here while the sweep goes on (see dist.hpp).
  // Kept across clear(); pass nullptr to remove.
  using LeafHook = void (*)(void* context, std::uint32_t leaf);
  void set_leaf_hook(LeafHook hook, void* context) {
    leaf_hook_ = hook;
    leaf_ctx_ = context;
  }
  LeafHook leaf_hook() const { return leaf_hook_; }

  bool grad_enabled() const { return grad_enabled_; }
  void set_grad_enabled(bool on) {
    grad_enabled_ = on;
    scalars_.set_special(!grad_enabled_ || anomaly_);
  }
  std::uint32_t generation() const { return gen_; }
  std::size_t scalar_count() const { return scalars_.size(); }
  std::size_t tensor_count() const { return tnodes_.size(); }
  // Bytes held by the scalar part of the tape (edges, values, adjoints).
  std::size_t scalar_bytes() const;
  // What the tape holds, by part, its peak and its nodes by op (counting the
  // nodes walks the tape: call it between steps, not inside one).
  TapeMemory memory() const;
  void reset_peak();
  // A cap on the bytes the tape holds (memory().held()), 0 for none. An
  // allocation that would cross it throws before it happens, naming what
  // asked (the op and its line), how much, and what the tape holds; the
  // tape stays as it was and usable (clear or rewind it, or raise the cap).
  void set_memory_budget(std::size_t bytes) { budget_ = bytes; }
  std::size_t memory_budget() const { return budget_; }

  // ---- inspection ----
  ScalarOp scalar_op(std::uint32_t i) const {
    return ScalarOp(scalars_.edges()[i].a_op >> kIndexBits);
  }
  const ScalarEdges& scalar_edges(std::uint32_t i) const { return scalars_.edges()[i]; }
  std::uint32_t scalar_input_a(std::uint32_t i) const {
    return scalars_.edges()[i].a_op & kIndexMask;
  }
  double scalar_value(std::uint32_t i) const { return scalars_.values()[i]; }
  // Input `slot` (0 = a, 1 = b) of a binary node: the input node's value, or
  // the plain number kept in the slot when the input is the sink.
  double scalar_operand(std::uint32_t i, int slot) const {
    const ScalarEdges& e = scalars_.edges()[i];
    const std::uint32_t in = slot == 0 ? e.a_op & kIndexMask : e.b;
    return in ? scalars_.values()[in] : (slot == 0 ? e.da : e.db);
  }
  double scalar_grad(std::uint32_t i) const { return i < adj_.size() ? adj_[i] : 0.0; }
  const TensorNode& tensor_node(std::uint32_t t) const { return tnodes_[t]; }
  // Where a scalar node was created and the CallSite around it; unknown
  // (line 0) for nodes recorded while anomaly detection was off.
  Site scalar_site(std::uint32_t i) const {
    return i < scalar_sites_.size() ? scalar_sites_[i].first : Site{};
  }
  Site scalar_caller(std::uint32_t i) const {
    return i < scalar_sites_.size() ? scalar_sites_[i].second : Site{};
  }
  // "created at file:line (function)[, called from ...]" for a node, or "".
  std::string origin(NodeKind kind, std::uint32_t index) const;

  // Display names of nodes (variables of an expression, ...), for inspection;
  // dropped with their nodes by clear() and rewind().
  void set_label(NodeKind kind, std::uint32_t index, std::string name);
  const std::string* label(NodeKind kind, std::uint32_t index) const;

  // Scope names: nodes created while a ScopeName guard is alive carry it.
  const std::vector<std::string>& scope_names() const { return scope_names_; }
  std::uint32_t current_scope() const { return scope_; }
  void set_current_scope(std::uint32_t s) { scope_ = s; }
  std::uint32_t intern_scope(const std::string& name);

  // The call site nodes are attributed to as well as their own (see CallSite).
  Site call_site() const { return call_site_; }
  void set_call_site(Site s) { call_site_ = s; }

  // ---- record once, replay many (replay.hpp) ----
  // Records a comparison of scalar a with b (either may be 0, the sink, for a
  // plain number c) and returns its outcome.
  bool record_compare(Compare how, std::uint32_t a, std::uint32_t b, double c, Site where);
  const std::vector<CompareRecord>& compares() const { return compares_; }
  // Re-runs the recorded forward at the leaves' current values: every scalar
  // node in [1, scalar_count()) and every tensor node gets its value and local
  // partials recomputed in place, routers re-decide, and each recorded
  // comparison is checked. No user code runs; nothing is allocated. The
  // status lists the comparisons whose outcome changed (the tape then no
  // longer is the function the user's code would compute).
  ReplayStatus replay();
  ReplayStatus replay(std::uint32_t s_hi, std::uint32_t t_hi);
  // Zeroes the adjoints of scalar nodes [0, s_hi) and runs the reverse sweep
  // from scalar root r (r < s_hi) over them and the tensor nodes before it:
  // the replay loop's backward, without the bookkeeping of backward().
  void sweep_from(std::uint32_t r);

  // ---- for op implementations ----
  static constexpr unsigned kIndexBits = 26;
  static constexpr std::uint32_t kIndexMask = (1u << kIndexBits) - 1;
  static constexpr std::size_t kMaxScalarNodes = kIndexMask;

  bool is_live_scalar(std::uint32_t index, std::uint32_t gen) const {
    return gen == gen_ || (gen >= clear_gen_ && index < stable_s_);
  }
  void check_scalar(std::uint32_t index, std::uint32_t gen, const char* what) const {
    if (gen != gen_ && (gen < clear_gen_ || index >= stable_s_)) [[unlikely]]
      throw_stale(index, gen, what);
  }
  void check_tensor(std::uint32_t index, std::uint32_t gen, const char* what) const {
    if (gen != gen_ && (gen < clear_gen_ || index >= stable_t_)) [[unlikely]]
      throw_stale(index, gen, what);
  }
  // Appends a scalar node; returns its index. The fast path is one
  // comparison and the stores; growing the arrays, NoGrad and anomaly
  // detection all go to the cold push_slow (docs/design.md, Note [cold
  // push]). The arrays never grow past kMaxScalarNodes: growing there throws.
  [[gnu::always_inline]] std::uint32_t push_scalar(ScalarOp op, std::uint32_t a, std::uint32_t b,
                                                   double da, double db, double v, Site where) {
    if (!scalars_.has_room()) [[unlikely]]
      return push_slow(op, a, b, da, db, v, where);
    const std::uint32_t i = scalars_.size();
    scalars_.push(a | (static_cast<std::uint32_t>(op) << kIndexBits), b, da, db, v);
    return i;
  }
  // A statement of several nodes (Real) records them as one batch: the
  // size is read once and written once, so the nodes of one statement do not
  // wait on each other through memory (every push_scalar loads the size the
  // previous one stored). has_scalar_room(k) is push_scalar's check for k
  // nodes; when it fails, push one by one. put_scalar writes node i
  // (scalar_count() <= i < scalar_count() + k), commit_scalars(n) makes
  // nodes [0, n) the tape's.
  bool has_scalar_room(std::uint32_t k) const { return scalars_.has_room(k); }
  [[gnu::always_inline]] void put_scalar(std::uint32_t i, ScalarOp op, std::uint32_t a,
                                         std::uint32_t b, double da, double db, double v) {
    scalars_.put(i, a | (static_cast<std::uint32_t>(op) << kIndexBits), b, da, db, v);
  }
  void commit_scalars(std::uint32_t n) { scalars_.set_size(n); }
  void set_scalar_value(std::uint32_t i, double v) { scalars_.values()[i] = v; }
  double* scalar_adjoints();  // sized to scalar_count()

  // Appends a tensor node with an uninitialised value buffer; returns its index.
  std::uint32_t push_tensor(const TensorOpDef* op, const Shape& shape, DType dtype,
                            std::initializer_list<std::uint32_t> inputs, Site where,
                            std::uint32_t scalar_in = kNone);
  // A leaf whose value and gradient live in caller-owned memory; with
  // `pending`, a gradient that may be left unwritten (see PendingGrad).
  std::uint32_t push_external(const Shape& shape, DType dtype, void* value, void* grad,
                              const char* label, Site where, PendingGrad* pending = nullptr);
  TensorNode& tensor_node(std::uint32_t t) { return tnodes_[t]; }
  // The node's gradient buffer, allocated and zeroed on first use: rules add
  // into it.
  void* grad_buffer(std::uint32_t t);
  // The same for a rule about to write every element: *fresh is true when the
  // buffer holds no gradient yet (new, or a lazily zeroed parameter), and the
  // rule must then overwrite it (beta = 0 in a GEMM) rather than add; that
  // saves zeroing it and reading it back. Ask for each input's buffer just
  // before writing it: an op may take one node twice.
  void* grad_for_write(std::uint32_t t, bool* fresh);
  // For a rule whose contribution to node t's gradient is the outer product
  // a b^T (rows x cols; a[r] = a[r * sa], b[c] = b[c * sb]): when t's
  // gradient is a parameter's, holds nothing yet and may keep factors,
  // stores them in place of the product and returns true. Otherwise returns
  // false and the rule writes the product itself.
  bool defer_outer(std::uint32_t t, std::int64_t rows, std::int64_t cols, const void* a,
                   std::int64_t sa, const void* b, std::int64_t sb);
  // Keeps `obj` alive as long as tensor node t is on the tape (dropped with
  // the node by clear and rewind): an op's closure, say (checkpoint()).
  void own(std::uint32_t t, std::shared_ptr<const void> obj) {
    owned_.emplace_back(t, std::move(obj));
  }
  // Pooled scratch memory, returned to the pool at clear/rewind with the node.
  Buffer acquire(std::size_t bytes);
  void release(Buffer&& b);

  // Tapes belong to the thread that created them; using one from another
  // thread throws (checked on tape-level calls and tensor ops). adopt() hands
  // a tape to the calling thread on purpose.
  std::thread::id owner() const { return owner_; }
  void adopt() { owner_ = std::this_thread::get_id(); }
  void check_owner(const char* what) const {
    if (std::this_thread::get_id() != owner_) [[unlikely]]
      throw_foreign_thread(what);
  }

 private:
  friend struct detail::HigherOrder;  // the higher-order sweeps (higher.cpp)
  [[noreturn]] void throw_stale(std::uint32_t index, std::uint32_t gen, const char* what) const;
  std::uint32_t push_slow(ScalarOp op, std::uint32_t a, std::uint32_t b, double da, double db,
                          double v, Site where);
  [[noreturn]] void throw_foreign_thread(const char* what) const;
  void sweep(std::uint32_t s_hi, std::uint32_t t_hi);
  void sweep_scalars(std::uint32_t lo, std::uint32_t hi);
  void sweep_scalars_checked(std::uint32_t lo, std::uint32_t hi);
  template <bool Checked>
  void replay_scalars(std::uint32_t lo, std::uint32_t hi, ReplayStatus& st, std::size_t& cmp);
  void check_tensor_backward(std::uint32_t t);
  [[noreturn]] void throw_anomaly(const std::string& what, NodeKind kind, std::uint32_t node) const;
  void run_backward(std::uint32_t s_hi, std::uint32_t t_hi);
  bool has_swept_interior(std::uint32_t s_hi, std::uint32_t t_hi);
  void drop_tensors_from(std::uint32_t t);
  // Memory: the bytes in use and held (O(tensor nodes + pool)), the peak
  // kept up to date before anything is dropped, and the budget's check of
  // an allocation of `bytes` that `what` asks for.
  std::size_t tensor_bytes_in_use() const;
  std::size_t held_bytes() const;
  void note_peak() const;
  void charge(std::size_t bytes, const std::string& what) const;
  std::string alloc_context() const;

  detail::ScalarArrays scalars_;
  std::vector<double> adj_;  // may be shorter than scalars_: missing entries are 0
  std::vector<TensorNode> tnodes_;
  std::vector<Buffer> pool_;
  std::vector<std::pair<std::uint32_t, std::shared_ptr<const void>>> owned_;  // see own()
  std::vector<std::string> scope_names_;
  std::vector<std::pair<std::uint64_t, std::string>> labels_;  // key: tensor bit << 32 | index
  // {site, caller} of scalar nodes recorded under anomaly detection; shorter
  // than the tape when the rest were recorded without it.
  std::vector<std::pair<Site, Site>> scalar_sites_;
  std::vector<CompareRecord> compares_;  // in node order
  Site call_site_;
  std::uint32_t scope_ = kNone;
  std::uint32_t gen_ = 1, clear_gen_ = 1;
  // Nodes below these counts survived every rewind since the last clear().
  std::uint32_t stable_s_ = kNone, stable_t_ = kNone;
  // Highest scalar / tensor node ranges swept since the last zero_grad().
  std::uint32_t swept_s_ = 0, swept_t_ = 0;
  bool grad_enabled_ = true;
  bool anomaly_ = false;
  std::size_t budget_ = 0;
  mutable std::size_t peak_ = 0;
  // Who asks for the next tensor buffer, for the budget's error: an op
  // being recorded (name, line) or a node whose gradient is being made.
  const char* alloc_op_ = nullptr;
  Site alloc_site_;
  LeafHook leaf_hook_ = nullptr;
  void* leaf_ctx_ = nullptr;
  std::thread::id owner_;
};

}  // namespace tapegrad

#include "tapegrad/tape_scope.hpp"
