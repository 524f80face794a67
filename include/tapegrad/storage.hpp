#pragma once
// The tape's storage: the 24-byte edge record of a scalar node, the arrays
// that hold scalar nodes, and the aligned buffers of tensor nodes. (Part of
// tape.hpp; include that.)
#include <cstddef>
#include <cstdint>

namespace tapegrad {

// The two weighted input edges of a scalar node. An input of a binary op that
// points at the sink (index 0) is a plain number, stored in that input's
// partial slot (x * 2.0 is one node: {a = x, da = 2, b = 0, db = 2}).
struct ScalarEdges {
  std::uint32_t a_op;  // low 26 bits: first input; top 6 bits: ScalarOp
  std::uint32_t b;     // second input (0 = sink when unused)
  double da;           // d(out)/d(a)
  double db;           // d(out)/d(b)
};
static_assert(sizeof(ScalarEdges) == 24);

// How many buffers have been allocated from the system by this thread (the
// pool's misses): a training step in steady state should add none.
std::uint64_t buffer_allocations();

// A raw, 64-byte aligned, uninitialised byte buffer. Move-only.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes);
  // One that starts `page_offset` bytes into a 4 KiB page (a multiple of 64
  // below 4096), for arrays one loop streams side by side (docs/design.md,
  // Note [4K aliasing]).
  Buffer(std::size_t bytes, std::size_t page_offset);
  Buffer(Buffer&& o) noexcept : p_(o.p_), base_(o.base_), bytes_(o.bytes_) {
    o.p_ = o.base_ = nullptr, o.bytes_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept;
  ~Buffer();
  void* data() const { return p_; }
  std::size_t bytes() const { return bytes_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  void* p_ = nullptr;
  void* base_ = nullptr;  // what was allocated (p_ or before it)
  std::size_t bytes_ = 0;
};

namespace detail {
// The scalar part of a tape: edges and values in two arrays that share one
// size, so recording a node costs one capacity check. Large arrays ask the
// kernel for huge pages (fewer TLB misses on long tapes).
class ScalarArrays {
 public:
  ScalarArrays() = default;
  ~ScalarArrays();
  ScalarArrays(const ScalarArrays&) = delete;
  ScalarArrays& operator=(const ScalarArrays&) = delete;

  std::uint32_t size() const { return n_; }
  std::uint32_t capacity() const { return cap_; }
  // The capacity grow() would allocate next.
  std::size_t next_capacity() const;
  ScalarEdges* edges() const { return e_; }
  double* values() const { return v_; }
  // Makes room for one more node (cold: called when has_room() is false).
  void reserve_one() {
    if (n_ == cap_) grow();
  }
  // The one check of the recording fast path: false when the arrays are full
  // or the tape is in a special mode (NoGrad, anomaly detection), which sets
  // the limit to 0 so that both cases take the same cold branch.
  bool has_room() const { return n_ < limit_; }
  // The same check for k nodes written at once (put, then set_size).
  bool has_room(std::uint32_t k) const { return n_ + k <= limit_; }
  void set_special(bool on) { special_ = on, limit_ = on ? 0 : cap_; }
  // Requires room (has_room() or reserve_one()).
  [[gnu::always_inline]] void push(std::uint32_t a_op, std::uint32_t b, double da, double db,
                                   double v) {
    put(n_, a_op, b, da, db, v);
    ++n_;
  }
  // Writes node i without touching the size (requires has_room(k) for the
  // k nodes written from size(); set_size ends the batch).
  [[gnu::always_inline]] void put(std::uint32_t i, std::uint32_t a_op, std::uint32_t b, double da,
                                  double db, double v) {
    ScalarEdges* e = e_ + i;
    e->a_op = a_op;
    e->b = b;
    e->da = da;
    e->db = db;
    v_[i] = v;
  }
  // The size: nodes [0, n) are the tape's (a batch's end, clear, rewind).
  void set_size(std::uint32_t n) { n_ = n; }

 private:
  void grow();
  ScalarEdges* e_ = nullptr;
  double* v_ = nullptr;
  std::uint32_t n_ = 0, cap_ = 0, limit_ = 0;
  bool special_ = false;
};
}  // namespace detail

}  // namespace tapegrad
