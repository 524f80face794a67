#pragma once
// The Python module's own types: what a Python handle to a node holds, and
// the helpers the binding files share. See docs/python.md for the user's view
// and docs/design.md, "Python", for why it is built this way.
#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "tapegrad/tapegrad.hpp"

namespace tapegrad::python {

namespace py = pybind11;

// A tape as Python sees it. Python objects can outlive any C++ scope, so a
// handle holds its Box by shared pointer and the tape lives as long as a
// handle to it does. The Box also knows the live Python handles to its
// nodes, which lets it reclaim what no one can reach any more:
//   - when the last handle goes, the tape is cleared (its memory kept);
//   - a tape of scalar nodes that has grown past a threshold is compacted
//     when a new leaf is made: the nodes the live handles reach are copied
//     down in order and the handles renumbered (docs/design.md, "Python").
// So a loop that builds and drops graphs on the default tape runs in bounded
// memory, and a sweep never walks far through dead graphs.
//
// A Box may also lend a tape it does not own (the private tape of gradcheck,
// the trainer's): `close()` then cuts it off when the C++ call that lent it
// returns, and a handle that escaped throws instead of touching freed memory.
struct ScalarLink {
  ScalarLink* prev = nullptr;
  ScalarLink* next = nullptr;
  Scalar* handle = nullptr;
};

class Box {
 public:
  Box() : owned_(std::make_unique<Tape>()), tape_(owned_.get()) {}
  explicit Box(Tape& borrowed) : tape_(&borrowed) {}
  Box(const Box&) = delete;
  Box& operator=(const Box&) = delete;

  Tape& tape() const {
    if (!tape_) [[unlikely]]
      throw_closed();
    return *tape_;
  }
  bool open() const { return tape_ != nullptr; }
  void close() {
    tape_ = nullptr;
    keep_.clear();
  }
  void acquire() { ++live_; }
  // The last handle can go on any thread (Python's garbage collector runs
  // where it runs); only the tape's own thread may clear it, and any other
  // leaves it for the next clear or compaction there.
  void release() {
    if (--live_ == 0 && tape_ && owned_ && tape_->owner() == std::this_thread::get_id()) clear();
  }
  std::size_t live() const { return live_; }
  void clear() {
    tape_->clear();
    keep_.clear();
  }
  void rewind(const Mark& m) {
    tape_->rewind(m);
    std::erase_if(keep_, [&](const auto& k) { return k.first >= m.tensors; });
  }
  // A mark taken by the user: from then on the user manages the tape's
  // memory and compaction (which would invalidate the mark) stays off.
  Mark mark() {
    marked_ = true;
    return tape().mark();
  }
  // Keeps `obj` (a NumPy array whose memory tensor node `t` uses) alive as
  // long as the node is on the tape.
  void keep(std::uint32_t t, py::object obj) { keep_.emplace_back(t, std::move(obj)); }

  // The live Scalar handles, for compaction.
  void link(ScalarLink* l) {
    l->prev = nullptr;
    l->next = head_;
    if (head_) head_->prev = l;
    head_ = l;
  }
  void unlink(ScalarLink* l) {
    (l->prev ? l->prev->next : head_) = l->next;
    if (l->next) l->next->prev = l->prev;
  }
  // Compacts the tape when it has grown past the threshold (see above).
  void maybe_compact() {
    if (tape_ && tape_->scalar_count() > compact_at_ &&
        tape_->owner() == std::this_thread::get_id()) [[unlikely]]
      compact();
  }
  // Functions replay their tape through C++ handles the Box cannot renumber.
  void pin() { pinned_ = true; }
  std::size_t compactions() const { return compactions_; }

 private:
  [[noreturn]] static void throw_closed();
  void compact();
  std::unique_ptr<Tape> owned_;
  Tape* tape_;
  std::size_t live_ = 0;
  std::vector<std::pair<std::uint32_t, py::object>> keep_;
  ScalarLink* head_ = nullptr;
  // Compaction runs when the tape holds 4x the nodes the last one kept, and
  // at least kCompactMin: amortised, each node recorded is copied at most a
  // third of a time, and a sweep walks at most 3x the live graph.
  static constexpr std::size_t kCompactMin = 4096;
  std::size_t compact_at_ = kCompactMin;
  std::size_t compactions_ = 0;
  bool marked_ = false, pinned_ = false;
};
using BoxPtr = std::shared_ptr<Box>;

// A Python handle: the node's C++ handle and its Box, counted live (and,
// for scalars, linked into the Box's list for compaction).
template <class Handle>
struct Node {
  static constexpr bool kLinked = std::is_same_v<Handle, Scalar>;
  Handle h;
  BoxPtr box;
  ScalarLink link;
  Node(Handle handle, BoxPtr b) : h(handle), box(std::move(b)) { enter(); }
  Node(const Node& o) : h(o.h), box(o.box) { enter(); }
  Node(Node&& o) noexcept : h(o.h), box(o.box) { enter(); }
  Node& operator=(const Node&) = delete;
  ~Node() {
    if constexpr (kLinked) box->unlink(&link);
    box->release();
  }
  // The handle, checked: its tape still lent, and the handle not stale.
  const Handle& get() const {
    box->tape();
    return h;
  }

 private:
  void enter() {
    box->acquire();
    if constexpr (kLinked) {
      link.handle = &h;
      box->link(&link);
    }
  }
};
using PyScalar = Node<Scalar>;
using PyTensor = Node<Tensor>;

// The calling thread's current tape: the innermost `with tape:` block's, else
// this thread's default tape (made on first use).
BoxPtr current_box();
void push_box(BoxPtr box);
void pop_box();
// Drops the default tapes' Python references before the interpreter ends.
void drop_default_boxes();

// The innermost Python frame as a Site, so that errors, node checks and the
// explorer name the user's Python line. Site{} when there is no frame.
Site python_site();
// Whether python_site() can give lines (the layout check passed).
bool python_sites_available();

// A Scalar or a Tensor handle from a Python object, for the functions that
// take either (jvp, hessian, ...); throws TypeError naming `what` otherwise.
Ref to_ref(py::handle obj, const char* what);
// The Box behind a Python handle.
BoxPtr box_of(py::handle obj, const char* what);

// A tensor leaf from a NumPy array (or anything NumPy converts): float32 and
// float64 C-contiguous arrays are used in place (no copy; the tape keeps the
// array alive), anything else of a real or integer dtype is copied into a
// float64 leaf. Other dtypes throw TypeError naming the dtype.
PyTensor tensor_from_array(py::handle obj, bool requires_grad, py::object dtype, BoxPtr box);
// A read-only NumPy view of a tensor node's values (or gradient), valid while
// the tensor's tape keeps the node; `owner` is kept alive by the view.
py::array tensor_view(const PyTensor& t, bool grad, py::handle owner);

// A float64 vector from a NumPy array or sequence, with `n` elements when n
// is not -1; errors name `what`.
std::vector<double> doubles(py::handle obj, std::int64_t n, const char* what);
py::array_t<double> to_numpy(const std::vector<double>& v);
py::array_t<double> to_numpy(const std::vector<double>& v, std::int64_t rows, std::int64_t cols);

DType parse_dtype(py::handle dtype);  // None, "float32"/"float64", numpy.float32/float64
// A shape argument: an int or a sequence of ints.
Shape parse_shape(py::handle shape);
// A `tape=` argument: the given Tape, or the current one for None.
BoxPtr tape_or_current(py::handle tape);

// A Python object kept by C++ (a block function a tape owns), released
// with the GIL held whenever the interpreter is still there.
struct Held {
  py::object obj;
  explicit Held(py::object o) : obj(std::move(o)) {}
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  ~Held() {
    if (!Py_IsInitialized()) {
      obj.release();  // the interpreter is gone: nothing to give it back to
      return;
    }
    py::gil_scoped_acquire gil;
    obj = py::object();
  }
};

// A self-contained HTML page (the sweep explorer, a training report), shown
// inline by a notebook in an iframe.
struct Page {
  std::string html;
};

void bind_core(py::module_& m);
void bind_math(py::module_& m);
void bind_derivatives(py::module_& m);
void bind_inspect(py::module_& m);
void bind_nn(py::module_& nn);

}  // namespace tapegrad::python
