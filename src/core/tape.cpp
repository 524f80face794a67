#include "tapegrad/tape.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#include "core/kernels.hpp"
#include "tapegrad/scalar.hpp"
#include "tapegrad/tensor.hpp"

namespace tapegrad {

namespace {
constexpr std::size_t kPoolLimit = 4096;  // buffers kept for reuse at most
}  // namespace

// ---- Buffer ----

namespace {
thread_local std::uint64_t t_buffer_allocations = 0;
}
std::uint64_t buffer_allocations() { return t_buffer_allocations; }

Buffer::Buffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  ++t_buffer_allocations;
  static const std::size_t ram = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) *
                                 static_cast<std::size_t>(sysconf(_SC_PAGE_SIZE));
  if (bytes > ram)
    throw Error(fmt::format(
        "tensor: {} bytes ({:.1f} GiB) requested, more than this machine's memory ({:.1f} GiB); "
        "nothing was allocated",
        bytes, static_cast<double>(bytes) / (1ull << 30), static_cast<double>(ram) / (1ull << 30)));
  p_ = base_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p_)
    throw Error(fmt::format("tensor: cannot allocate {} bytes ({:.1f} GiB)", bytes,
                            static_cast<double>(bytes) / (1ull << 30)));
}
Buffer::Buffer(std::size_t bytes, std::size_t page_offset) {
  if (bytes == 0) return;
  constexpr std::size_t kPage = 4096;
  Buffer raw(bytes + kPage);
  const auto at = reinterpret_cast<std::uintptr_t>(raw.data());
  const std::size_t skip = (page_offset / 64 * 64 + kPage - at % kPage) % kPage;
  base_ = raw.base_;
  p_ = static_cast<char*>(raw.p_) + skip;
  bytes_ = bytes;
  raw.p_ = raw.base_ = nullptr;
}
Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    std::free(base_);
    p_ = o.p_, base_ = o.base_, bytes_ = o.bytes_;
    o.p_ = o.base_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}
Buffer::~Buffer() { std::free(base_); }

// ---- ScalarArrays ----

namespace detail {
namespace {
constexpr std::size_t kHuge = std::size_t{2} << 20;
void* alloc_array(std::size_t bytes) {
  void* p = nullptr;
  if (bytes >= kHuge) {
    bytes = (bytes + kHuge - 1) / kHuge * kHuge;
    p = std::aligned_alloc(kHuge, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
  } else {
    p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  if (!p) throw Error(fmt::format("tape: cannot allocate {} bytes for scalar nodes", bytes));
  return p;
}
}  // namespace

ScalarArrays::~ScalarArrays() {
  std::free(e_);
  std::free(v_);
}

void ScalarArrays::grow() {
  if (cap_ >= Tape::kMaxScalarNodes)
    throw Error(
        fmt::format("tape: more than {} scalar nodes; clear() or rewind() the tape between steps",
                    Tape::kMaxScalarNodes - 1));
  const std::size_t cap = next_capacity();
  auto* e = static_cast<ScalarEdges*>(alloc_array(cap * sizeof(ScalarEdges)));
  double* v;
  try {
    v = static_cast<double*>(alloc_array(cap * sizeof(double)));
  } catch (...) {
    std::free(e);
    throw;
  }
  if (n_) {
    std::memcpy(e, e_, n_ * sizeof(ScalarEdges));
    std::memcpy(v, v_, n_ * sizeof(double));
  }
  std::free(e_);
  std::free(v_);
  e_ = e, v_ = v, cap_ = static_cast<std::uint32_t>(cap);
  limit_ = special_ ? 0 : cap_;
}
}  // namespace detail

// ---- Tape ----

Tape::Tape() : owner_(std::this_thread::get_id()) {
  scalars_.reserve_one();
  scalars_.push(static_cast<std::uint32_t>(ScalarOp::sink) << kIndexBits, 0, 0.0, 0.0, 0.0);
}
Tape::~Tape() = default;

Scalar Tape::variable(double v, Site where) {
  check_owner("variable");
  return {*this, push_scalar(ScalarOp::leaf, 0, 0, 0, 0, v, where)};
}
Scalar Tape::constant(double v, Site where) {
  check_owner("constant");
  return {*this, push_scalar(ScalarOp::constant, 0, 0, 0, 0, v, where)};
}

std::size_t Tape::scalar_bytes() const {
  return scalars_.size() * (sizeof(ScalarEdges) + sizeof(double)) + adj_.size() * sizeof(double);
}

void Tape::throw_stale(std::uint32_t index, std::uint32_t gen, const char* what) const {
  throw Error(fmt::format(
      "{}: stale handle to node {} of tape generation {} (the tape is at generation {}): "
      "the tape was cleared or rewound since this value was created; rebuild the value on "
      "the current tape",
      what, index, gen, gen_));
}

void Tape::throw_foreign_thread(const char* what) const {
  throw Error(fmt::format(
      "{}: this tape belongs to another thread; tapes are not shared between threads (give "
      "each thread its own, or hand one over with tape.adopt())",
      what));
}

// The cold half of push_scalar: grows the arrays, and handles NoGrad (a
// constant) and anomaly detection (keeps the site, checks the value).
std::uint32_t Tape::push_slow(ScalarOp op, std::uint32_t a, std::uint32_t b, double da, double db,
                              double v, Site where) {
  if (budget_ && scalars_.size() == scalars_.capacity()) {
    const std::size_t more =
        (scalars_.next_capacity() - scalars_.capacity()) * (sizeof(ScalarEdges) + sizeof(double));
    if (more) {
      const std::string site = site_str(where);
      charge(more, fmt::format("'{}'{} (growing the scalar arrays from {} to {} nodes)",
                               scalar_op_name(op), site.empty() ? "" : " at " + site,
                               scalars_.capacity(), scalars_.next_capacity()));
    }
  }
  scalars_.reserve_one();
  if (!grad_enabled_) op = ScalarOp::constant, a = b = 0, da = db = 0;
  const std::uint32_t i = scalars_.size();
  scalars_.push(a | (static_cast<std::uint32_t>(op) << kIndexBits), b, da, db, v);
  if (anomaly_) {
    if (scalar_sites_.size() < i) scalar_sites_.resize(i);
    scalar_sites_.emplace_back(where, call_site_);
    check_scalar_forward(i);
  }
  return i;
}

double* Tape::scalar_adjoints() {
  if (budget_ && adj_.capacity() < scalars_.size())
    charge((scalars_.size() - adj_.capacity()) * sizeof(double),
           fmt::format("the backward sweep (adjoints of {} scalar nodes)", scalars_.size()));
  if (adj_.size() < scalars_.size()) adj_.resize(scalars_.size(), 0.0);
  return adj_.data();
}

std::uint32_t Tape::intern_scope(const std::string& name) {
  for (std::size_t i = 0; i < scope_names_.size(); ++i)
    if (scope_names_[i] == name) return static_cast<std::uint32_t>(i);
  scope_names_.push_back(name);
  return static_cast<std::uint32_t>(scope_names_.size() - 1);
}

void Tape::set_label(NodeKind kind, std::uint32_t index, std::string name) {
  const std::uint64_t key = (std::uint64_t{kind == NodeKind::tensor} << 32) | index;
  for (auto& [k, v] : labels_)
    if (k == key) {
      v = std::move(name);
      return;
    }
  labels_.emplace_back(key, std::move(name));
}

const std::string* Tape::label(NodeKind kind, std::uint32_t index) const {
  const std::uint64_t key = (std::uint64_t{kind == NodeKind::tensor} << 32) | index;
  for (const auto& [k, v] : labels_)
    if (k == key) return &v;
  return nullptr;
}

Buffer Tape::acquire(std::size_t bytes) {
  if (bytes == 0) return {};
  for (std::size_t i = pool_.size(); i-- > 0;) {
    if (pool_[i].bytes() == bytes) {
      Buffer b = std::move(pool_[i]);
      if (i + 1 != pool_.size()) pool_[i] = std::move(pool_.back());
      pool_.pop_back();
      return b;
    }
  }
  if (budget_) charge(bytes, alloc_context());
  return Buffer(bytes);
}

void Tape::release(Buffer&& b) {
  if (b && pool_.size() < kPoolLimit) pool_.push_back(std::move(b));
  b = Buffer();
}

namespace {
// Zero-element tensors point here instead of at null, so no memcpy or memset
// ever sees a null pointer (undefined even for zero bytes); never read.
void* empty_storage() {
  alignas(64) static std::byte storage[64];
  return storage;
}
}  // namespace

std::uint32_t Tape::push_tensor(const TensorOpDef* op, const Shape& shape, DType dtype,
                                std::initializer_list<std::uint32_t> inputs, Site where,
                                std::uint32_t scalar_in) {
  check_owner(op->name);
  TensorNode n;
  n.op = op;
  n.shape = shape;
  n.dtype = dtype;
  bool rg = false;
  for (std::uint32_t in : inputs) {
    n.in[n.n_in++] = in;
    rg = rg || tnodes_[in].requires_grad;
  }
  if (scalar_in != kNone) {
    n.scalar_in = scalar_in;
    const ScalarOp sop = scalar_op(scalar_in);
    rg = rg || sop != ScalarOp::constant;
  }
  n.requires_grad = rg && grad_enabled_ && op->backward != nullptr;
  n.scalar_mark = static_cast<std::uint32_t>(scalars_.size());
  alloc_op_ = op->name, alloc_site_ = where;
  try {
    n.value_buf = acquire(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype));
  } catch (...) {
    alloc_op_ = nullptr;
    throw;
  }
  alloc_op_ = nullptr;
  n.value = n.value_buf ? n.value_buf.data() : empty_storage();
  n.scope = scope_;
  n.site = where;
  n.caller = call_site_;
  tnodes_.push_back(std::move(n));
  return static_cast<std::uint32_t>(tnodes_.size() - 1);
}

std::uint32_t Tape::push_external(const Shape& shape, DType dtype, void* value, void* grad,
                                  const char* label, Site where, PendingGrad* pending) {
  check_owner("external");
  static const TensorOpDef kParam{.name = "parameter"};
  static const TensorOpDef kInput{.name = "input"};
  TensorNode n;
  n.op = grad ? &kParam : &kInput;
  n.shape = shape;
  n.dtype = dtype;
  n.requires_grad = grad != nullptr && grad_enabled_;
  n.scalar_mark = static_cast<std::uint32_t>(scalars_.size());
  n.value = value ? value : empty_storage();
  n.grad = n.requires_grad ? grad : nullptr;
  if (n.grad) n.pending = pending;
  n.label = label;
  n.scope = scope_;
  n.site = where;
  n.caller = call_site_;
  tnodes_.push_back(std::move(n));
  return static_cast<std::uint32_t>(tnodes_.size() - 1);
}

void* Tape::grad_buffer(std::uint32_t t) {
  bool fresh = false;
  void* g = grad_for_write(t, &fresh);
  const std::size_t bytes =
      static_cast<std::size_t>(tnodes_[t].shape.numel()) * dtype_size(tnodes_[t].dtype);
  if (fresh && bytes) std::memset(g, 0, bytes);
  return g;
}

void* Tape::grad_for_write(std::uint32_t t, bool* fresh) {
  TensorNode& n = tnodes_[t];
  if (!n.grad) {  // first gradient of a tape-owned node: a new, unzeroed buffer
    alloc_op_ = n.op->name, alloc_site_ = n.site;
    try {
      n.grad_buf = acquire(static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
    } catch (...) {
      alloc_op_ = nullptr;
      throw;
    }
    alloc_op_ = nullptr;
    n.grad = n.grad_buf ? n.grad_buf.data() : empty_storage();
    *fresh = true;
    return n.grad;
  }
  // A parameter's memory is fresh if nothing wrote it since it was zeroed
  // (by any of the nodes that alias it: they share the state). Factors kept
  // by an earlier rule are written out first, and this rule adds to them.
  *fresh = false;
  if (n.pending && n.pending->pending()) {
    *fresh = n.pending->zero();
    if (*fresh)
      n.pending->state = PendingGrad::State::kWritten;
    else
      n.pending->settle();
  }
  return n.grad;
}

bool Tape::defer_outer(std::uint32_t t, std::int64_t rows, std::int64_t cols, const void* a,
                       std::int64_t sa, const void* b, std::int64_t sb) {
  TensorNode& n = tnodes_[t];
  PendingGrad* p = n.pending;
  if (!n.grad || !p || !p->outer_ok || !p->zero() || p->memory != n.grad || rows < 1 || cols < 1 ||
      static_cast<std::size_t>(rows * cols) * dtype_size(n.dtype) != p->bytes)
    return false;
  const std::size_t size = dtype_size(n.dtype);
  if (p->a.bytes() < static_cast<std::size_t>(rows) * size)
    p->a = Buffer(static_cast<std::size_t>(rows) * size);
  if (p->b.bytes() < static_cast<std::size_t>(cols) * size)
    p->b = Buffer(static_cast<std::size_t>(cols) * size);
  dispatch_dtype(n.dtype, [&](auto z) {
    using T = decltype(z);
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* fa = static_cast<T*>(p->a.data());
    T* fb = static_cast<T*>(p->b.data());
    for (std::int64_t r = 0; r < rows; ++r) fa[r] = pa[r * sa];
    for (std::int64_t c = 0; c < cols; ++c) fb[c] = pb[c * sb];
  });
  p->dtype = n.dtype;
  p->rows = rows;
  p->cols = cols;
  p->state = PendingGrad::State::kOuter;
  return true;
}

const void* TensorNode::grad_or_null() const {
  if (pending && pending->pending()) {
    if (pending->zero()) return nullptr;
    pending->settle();
  }
  return grad;
}

void PendingGrad::settle() {
  if (state == State::kZero && bytes) std::memset(memory, 0, bytes);
  if (state == State::kOuter) {
    dispatch_dtype(dtype, [&](auto z) {
      using T = decltype(z);
      // The same values (a[r] * b[c], rounded once) as the rule's own outer
      // product would have written.
      gemm(false, false, rows, cols, 1, T(1), static_cast<const T*>(a.data()), 1,
           static_cast<const T*>(b.data()), cols, T(0), static_cast<T*>(memory), cols);
    });
  }
  state = State::kWritten;
}

void Tape::zero_grad() {
  check_owner("zero_grad");
  std::fill(adj_.begin(), adj_.end(), 0.0);
  for (TensorNode& n : tnodes_) {
    if (n.pending) {  // zeroed lazily, like Parameter::zero_grad
      n.pending->state = PendingGrad::State::kZero;
    } else if (n.grad) {
      std::memset(n.grad, 0, static_cast<std::size_t>(n.shape.numel()) * dtype_size(n.dtype));
    }
  }
  swept_s_ = swept_t_ = 0;
}

void Tape::drop_tensors_from(std::uint32_t t) {
  for (std::size_t i = t; i < tnodes_.size(); ++i) {
    release(std::move(tnodes_[i].value_buf));
    release(std::move(tnodes_[i].grad_buf));
    release(std::move(tnodes_[i].saved));
  }
  tnodes_.resize(t);
  std::erase_if(owned_, [&](const auto& o) { return o.first >= t; });
}

void Tape::clear() {
  check_owner("clear");
  note_peak();
  drop_tensors_from(0);
  scalars_.set_size(1);
  labels_.clear();
  scalar_sites_.clear();
  compares_.clear();
  adj_.clear();
  ++gen_;
  clear_gen_ = gen_;
  stable_s_ = stable_t_ = kNone;
  swept_s_ = swept_t_ = 0;
}

Mark Tape::mark() const {
  return {static_cast<std::uint32_t>(scalars_.size()), static_cast<std::uint32_t>(tnodes_.size()),
          gen_};
}

void Tape::rewind(const Mark& m) {
  check_owner("rewind");
  note_peak();
  if (m.generation < clear_gen_)
    throw Error(
        fmt::format("rewind: the mark is from tape generation {}, before the last "
                    "clear() (generation {})",
                    m.generation, clear_gen_));
  if (m.scalars > scalars_.size() || m.tensors > tnodes_.size() || m.scalars == 0)
    throw Error(
        fmt::format("rewind: the mark ({} scalar, {} tensor nodes) lies beyond the tape "
                    "({} scalar, {} tensor nodes); it was made before an earlier rewind",
                    m.scalars, m.tensors, scalars_.size(), tnodes_.size()));
  drop_tensors_from(m.tensors);
  scalars_.set_size(m.scalars);
  std::erase_if(labels_, [&](const auto& kv) {
    const bool tensor = kv.first >> 32;
    const auto index = static_cast<std::uint32_t>(kv.first);
    return tensor ? index >= m.tensors : index >= m.scalars;
  });
  if (adj_.size() > m.scalars) adj_.resize(m.scalars);
  if (scalar_sites_.size() > m.scalars) scalar_sites_.resize(m.scalars);
  std::erase_if(compares_, [&](const CompareRecord& c) { return c.node >= m.scalars; });
  ++gen_;
  stable_s_ = std::min(stable_s_, m.scalars);
  stable_t_ = std::min(stable_t_, m.tensors);
  swept_s_ = std::min(swept_s_, m.scalars);
  swept_t_ = std::min(swept_t_, m.tensors);
}

// ---- current tape and scopes ----

namespace {
thread_local Tape* t_current = nullptr;
}

Tape& current_tape() {
  if (!t_current) {
    thread_local Tape default_tape;
    t_current = &default_tape;
  }
  return *t_current;
}

TapeScope::TapeScope(Tape& tape) : prev_(&current_tape()) { t_current = &tape; }
TapeScope::~TapeScope() { t_current = prev_; }

ScopeName::ScopeName(Tape& tape, const std::string& name)
    : tape_(tape), prev_(tape.current_scope()) {
  tape.set_current_scope(tape.intern_scope(name));
}

}  // namespace tapegrad
