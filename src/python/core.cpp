// The tapegrad Python module: tapes, Scalar and Tensor handles, NumPy in and
// out, Python source lines for nodes, and the C++ errors as Python
// exceptions. The other binding files add the math functions, the
// derivatives, inspection and nn.
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "python/bind.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::python {

void Box::throw_closed() {
  throw Error(
      "this handle's tape was lent to a Python function for the length of one call (gradcheck, "
      "a trainer's loss) and is gone now; keep values, not handles, from such a call");
}

void Box::compact() {
  Tape& t = *tape_;
  // Only plain scalar tapes: tensor nodes own buffers and refer to scalar
  // nodes by position; a user's mark or a Function's C++ handles would go
  // stale; node sites exist only under anomaly detection.
  if (!owned_ || marked_ || pinned_ || t.tensor_count() != 0 || t.anomaly_enabled() ||
      !t.grad_enabled()) {
    compact_at_ *= 2;
    return;
  }
  const auto n = static_cast<std::uint32_t>(t.scalar_count());
  std::vector<char> reached(n, 0);
  reached[0] = 1;
  for (ScalarLink* l = head_; l; l = l->next)
    if (t.is_live_scalar(l->handle->index(), l->handle->generation())) reached[l->handle->index()] = 1;
  for (std::uint32_t i = n; i-- > 1;) {
    if (!reached[i]) continue;
    const ScalarOp op = t.scalar_op(i);
    if (op == ScalarOp::item || op == ScalarOp::custom) {  // refer outside the scalar list
      compact_at_ *= 2;
      return;
    }
    reached[t.scalar_input_a(i)] = 1;
    reached[t.scalar_edges(i).b] = 1;
  }
  struct Row {
    std::uint32_t from;
    ScalarEdges e;
    double value, grad;
  };
  std::vector<Row> rows;
  std::vector<std::pair<std::uint32_t, std::string>> labels;
  for (std::uint32_t i = 1; i < n; ++i) {
    if (!reached[i]) continue;
    // A leaf keeps its gradient; an interior node's adjoint has been
    // propagated already and starts again from zero.
    const double g = t.scalar_op(i) == ScalarOp::leaf ? t.scalar_grad(i) : 0.0;
    rows.push_back({i, t.scalar_edges(i), t.scalar_value(i), g});
    if (const std::string* name = t.label(NodeKind::scalar, i)) labels.emplace_back(i, *name);
  }
  std::vector<std::uint32_t> to(n, 0);
  t.clear();
  for (const Row& r : rows) {
    const auto op = static_cast<ScalarOp>(r.e.a_op >> Tape::kIndexBits);
    to[r.from] = t.push_scalar(op, to[r.e.a_op & Tape::kIndexMask], to[r.e.b], r.e.da, r.e.db, r.value, Site{});
  }
  double* adj = t.scalar_adjoints();
  for (const Row& r : rows) adj[to[r.from]] = r.grad;
  for (auto& [i, name] : labels) t.set_label(NodeKind::scalar, to[i], std::move(name));
  for (ScalarLink* l = head_; l; l = l->next) {
    const Scalar& h = *l->handle;
    // Handles that were stale before stay stale: the clear moved the tape
    // to a new generation.
    if (h.index() < n && reached[h.index()] && (h.index() == 0 || to[h.index()] != 0) &&
        h.generation() + 1 == t.generation())
      *l->handle = Scalar(t, to[h.index()]);
  }
  compact_at_ = std::max<std::size_t>(kCompactMin, 4 * rows.size());
  ++compactions_;
}

// ---- current tape ----

namespace {
struct Boxes {
  BoxPtr fallback;           // this thread's default tape
  std::vector<BoxPtr> with;  // `with tape:` blocks, innermost last
  std::vector<std::unique_ptr<TapeScope>> scopes;
};
Boxes& boxes() {
  thread_local Boxes b;
  return b;
}
}  // namespace

BoxPtr current_box() {
  Boxes& b = boxes();
  if (!b.with.empty()) return b.with.back();
  if (!b.fallback) b.fallback = std::make_shared<Box>();
  return b.fallback;
}
void push_box(BoxPtr box) {
  Boxes& b = boxes();
  b.scopes.push_back(std::make_unique<TapeScope>(box->tape()));
  b.with.push_back(std::move(box));
}
void pop_box() {
  Boxes& b = boxes();
  if (b.with.empty()) throw Error("Tape.__exit__: no `with tape:` block is open on this thread");
  b.scopes.pop_back();
  b.with.pop_back();
}
void drop_default_boxes() {
  Boxes& b = boxes();
  b.scopes.clear();
  b.with.clear();
  b.fallback.reset();
}

// ---- Python lines as Sites ----
//
// Site is std::source_location, which offers no constructor from a file and
// a line: libstdc++ keeps one pointer to a static record of {file, function,
// line, column}. A Python line gets a record of that layout, made once per
// (code object, line) and kept for the life of the process, and a Site
// pointing at it. The layout is checked once when the module loads; if it
// does not hold, nodes simply carry no Python line.
namespace {
struct SiteRecord {
  const char* file;
  const char* function;
  unsigned line;
  unsigned column;
};
struct SiteText {
  std::string file, function;
  SiteRecord record;
};
bool site_layout_ok() {
#if defined(__GLIBCXX__) && defined(__cpp_lib_source_location)
  static_assert(sizeof(Site) == sizeof(const SiteRecord*));
  static const SiteRecord probe{"probe.py", "probe", 4242, 7};
  Site s;
  const SiteRecord* p = &probe;
  std::memcpy(static_cast<void*>(&s), &p, sizeof p);
  return s.line() == 4242 && s.column() == 7 && std::strcmp(s.file_name(), "probe.py") == 0 &&
         std::strcmp(s.function_name(), "probe") == 0;
#else
  return false;
#endif
}
const bool kSiteLayout = site_layout_ok();

struct CodeLine {
  PyCodeObject* code;
  int line;
  bool operator==(const CodeLine&) const = default;
};
struct CodeLineHash {
  std::size_t operator()(const CodeLine& k) const {
    return std::hash<const void*>()(k.code) ^ (static_cast<std::size_t>(k.line) * 0x9e3779b97f4a7c15ull);
  }
};
}  // namespace

Site python_site() {
  if (!kSiteLayout) return {};
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed; the GIL is held
  if (!frame) return {};
  PyCodeObject* code = PyFrame_GetCode(frame);  // new reference
  const int line = PyFrame_GetLineNumber(frame);
  // The records live for the process: nodes of any tape may point at them.
  // The map holds a reference to each code object, so an address is never
  // reused for another function while it is a key.
  static auto* records = new std::unordered_map<CodeLine, std::unique_ptr<SiteText>, CodeLineHash>();
  auto [it, fresh] = records->try_emplace(CodeLine{code, line});
  if (fresh) {
    auto text = std::make_unique<SiteText>();
    py::handle c(reinterpret_cast<PyObject*>(code));
    text->file = py::str(c.attr("co_filename"));
    text->function = py::str(c.attr("co_name"));
    text->record = {text->file.c_str(), text->function.c_str(), static_cast<unsigned>(line), 1};
    it->second = std::move(text);
  } else {
    Py_DECREF(code);  // the map already holds one
  }
  Site s;
  const SiteRecord* p = &it->second->record;
  std::memcpy(static_cast<void*>(&s), &p, sizeof p);
  return s;
}

// ---- conversions ----

BoxPtr box_of(py::handle obj, const char* what) {
  if (py::isinstance<PyScalar>(obj)) return obj.cast<const PyScalar&>().box;
  if (py::isinstance<PyTensor>(obj)) return obj.cast<const PyTensor&>().box;
  throw py::type_error(std::string(what) + ": expected a Scalar or a Tensor, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

Ref to_ref(py::handle obj, const char* what) {
  if (py::isinstance<PyScalar>(obj)) return Ref(obj.cast<const PyScalar&>().get());
  if (py::isinstance<PyTensor>(obj)) return Ref(obj.cast<const PyTensor&>().get());
  throw py::type_error(std::string(what) + ": expected a Scalar or a Tensor, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

DType parse_dtype(py::handle dtype) {
  if (dtype.is_none()) return DType::f64;
  const std::string name = py::str(py::module_::import("numpy").attr("dtype")(dtype).attr("name"));
  if (name == "float64") return DType::f64;
  if (name == "float32") return DType::f32;
  throw py::type_error("dtype: tapegrad tensors are float32 or float64, not " + name);
}

std::vector<double> doubles(py::handle obj, std::int64_t n, const char* what) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error(std::string(what) + ": expected an array of numbers");
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(fmt::format("{}: expected real numbers, got an array of dtype {}", what,
                                     std::string(py::str(a.dtype()))));
  auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
  std::vector<double> v(d.data(), d.data() + d.size());
  if (n >= 0 && static_cast<std::int64_t>(v.size()) != n)
    throw py::value_error(fmt::format("{}: expected {} numbers, got {}", what, n, v.size()));
  return v;
}

py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}
py::array_t<double> to_numpy(const std::vector<double>& v, std::int64_t rows, std::int64_t cols) {
  py::array_t<double> a({rows, cols});
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

namespace {
Shape shape_of(const py::array& a) {
  std::vector<std::int64_t> dims(a.shape(), a.shape() + a.ndim());
  if (a.ndim() > kMaxRank)
    throw py::value_error(fmt::format("tensor: {} axes; tapegrad tensors have at most {}",
                                      a.ndim(), kMaxRank));
  return Shape(std::span<const std::int64_t>(dims));
}
}  // namespace

PyTensor tensor_from_array(py::handle obj, bool requires_grad, py::object dtype, BoxPtr box) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error("tensor: expected a NumPy array or a nested sequence of numbers");
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(fmt::format(
        "tensor: tapegrad tensors hold real numbers; got an array of dtype {}",
        std::string(py::str(a.dtype()))));
  const DType want = dtype.is_none() ? (a.dtype().is(py::dtype::of<float>()) ? DType::f32 : DType::f64)
                                     : parse_dtype(dtype);
  const bool in_place = (want == DType::f64 ? a.dtype().is(py::dtype::of<double>())
                                            : a.dtype().is(py::dtype::of<float>())) &&
                        (a.flags() & py::array::c_style) && a.writeable();
  Tape& tape = box->tape();
  TapeScope scope(tape);
  const Site where = python_site();
  const Shape shape = shape_of(a);
  if (in_place) {
    // Used in place: the tape reads the array's memory (replay sees later
    // changes to it), and a gradient goes into an array of our own.
    py::array grad;
    if (requires_grad) {
      grad = py::array(a.dtype(), std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
      std::memset(grad.mutable_data(), 0, static_cast<std::size_t>(grad.nbytes()));
    }
    Tensor t = external(shape, want, a.mutable_data(), requires_grad ? grad.mutable_data() : nullptr,
                        nullptr, where);
    box->keep(t.index(), a);
    if (requires_grad) box->keep(t.index(), grad);
    return {t, box};
  }
  auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
  Tensor t = tensor(std::span<const double>(d.data(), static_cast<std::size_t>(d.size())), shape,
                    {.dtype = want, .requires_grad = requires_grad}, where);
  return {t, box};
}

py::array tensor_view(const PyTensor& t, bool grad, py::handle owner) {
  const Tensor& h = t.get();
  Tape& tape = h.tape();
  const TensorNode& n = tape.tensor_node(h.index());
  const void* p = grad ? n.grad_or_null() : n.value;
  std::vector<py::ssize_t> dims(n.shape.dims().begin(), n.shape.dims().end());
  const py::dtype dt = n.dtype == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
  if (!p) {  // no gradient reached the node: zeros of our own
    py::array z(dt, dims);
    std::memset(z.mutable_data(), 0, static_cast<std::size_t>(z.nbytes()));
    return z;
  }
  py::array a(dt, dims, {}, p, owner);
  // Read-only: the values belong to the tape (write to an input array, or
  // use .copy()).
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

// ---- the module ----

namespace {
template <class F>
auto on_box(const BoxPtr& box, F&& f) {
  TapeScope scope(box->tape());
  return f(box->tape());
}

py::object memory_dict(const TapeMemory& m) {
  py::dict d;
  d["scalar_nodes"] = m.scalar_nodes;
  d["tensor_nodes"] = m.tensor_nodes;
  d["scalar_bytes"] = m.scalar_bytes;
  d["adjoint_bytes"] = m.adjoint_bytes;
  d["tensor_bytes"] = m.tensor_bytes;
  d["spare_bytes"] = m.spare_bytes;
  d["pool_bytes"] = m.pool_bytes;
  d["in_use"] = m.in_use();
  d["held"] = m.held();
  d["peak_bytes"] = m.peak_bytes;
  d["budget_bytes"] = m.budget_bytes;
  py::dict ops;
  for (const auto& [name, count] : m.nodes_by_op) ops[py::str(name)] = count;
  d["nodes_by_op"] = ops;
  return d;
}

// A context manager that sets a tape flag for a with-block.
struct FlagScope {
  BoxPtr box;
  bool anomaly;  // else grad
  bool on;
  bool prev = false;
  void enter() {
    Tape& t = box->tape();
    prev = anomaly ? t.anomaly_enabled() : t.grad_enabled();
    anomaly ? t.set_anomaly_enabled(on) : t.set_grad_enabled(on);
  }
  void exit() {
    if (!box->open()) return;
    Tape& t = box->tape();
    anomaly ? t.set_anomaly_enabled(prev) : t.set_grad_enabled(prev);
  }
};
}  // namespace

void bind_core(py::module_& m) {
  // Errors: one Python class per C++ one, with the same message.
  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  static py::exception<AnomalyError> anomaly(m, "AnomalyError", error.ptr());
  static py::exception<BranchChanged> branch(m, "BranchChanged", error.ptr());
  error.doc() =
      "Every failure tapegrad reports: the message names the operation, the values involved "
      "(shapes, indices, file names) and the Python line that asked.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const BranchChanged& e) {
      py::object ex = py::reinterpret_borrow<py::object>(branch.ptr())(e.what());
      const Site s = e.comparison().site;
      ex.attr("line") = s.line();
      ex.attr("file") = s.file_name();
      PyErr_SetObject(branch.ptr(), ex.ptr());
    } catch (const AnomalyError& e) {
      py::object ex = py::reinterpret_borrow<py::object>(anomaly.ptr())(e.what());
      ex.attr("problem") = e.problem();
      ex.attr("node") = fmt::format("{}{}", e.tensor() ? 't' : 's', e.node());
      PyErr_SetObject(anomaly.ptr(), ex.ptr());
    } catch (const Error& e) {
      error(e.what());
    }
  });

  py::class_<Mark>(m, "Mark", "A position on a tape, for Tape.rewind.")
      .def_readonly("scalars", &Mark::scalars)
      .def_readonly("tensors", &Mark::tensors);

  py::class_<Box, BoxPtr>(m, "Tape", R"(A tape: the record of every operation, swept backwards for gradients.

Each thread has a default tape; ``with tg.Tape() as t:`` records on ``t`` instead.
A tape whose nodes no Python handle refers to any more is cleared, so graphs built
and dropped in a loop do not accumulate.)")
      .def(py::init<>())
      .def_static("current", &current_box, "The tape new leaves go on.")
      .def("__enter__", [](BoxPtr self) { push_box(self); return self; })
      .def("__exit__", [](const BoxPtr&, py::args) { pop_box(); })
      .def("variable",
           [](const BoxPtr& self, double v) {
             self->maybe_compact();
             return PyScalar(self->tape().variable(v, python_site()), self);
           },
           py::arg("value"), "A scalar leaf that takes gradients.")
      .def("constant",
           [](const BoxPtr& self, double v) {
             self->maybe_compact();
             return PyScalar(self->tape().constant(v, python_site()), self);
           },
           py::arg("value"), "A scalar leaf that takes no gradient.")
      .def("clear", [](Box& self) { self.tape(); self.clear(); },
           "Drops every node; existing handles become stale (using one raises Error).")
      .def("mark", &Box::mark, "A position to rewind to (the tape is then never compacted).")
      .def("rewind", [](Box& self, const Mark& mk) { self.tape(); self.rewind(mk); },
           "Drops the nodes recorded after the mark.")
      .def("zero_grad", [](const Box& self) { self.tape().zero_grad(); })
      .def_property_readonly("scalar_count", [](const Box& self) { return self.tape().scalar_count(); })
      .def_property_readonly("tensor_count", [](const Box& self) { return self.tape().tensor_count(); })
      .def_property_readonly("handles", &Box::live, "Live Python handles to this tape's nodes.")
      .def_property_readonly("compactions", &Box::compactions,
                             "How often the tape was compacted (unreachable nodes dropped).")
      .def("memory", [](const Box& self) { return memory_dict(self.tape().memory()); },
           "What the tape holds, by part, its peak, and its nodes by op.")
      .def("memory_report", [](const Box& self) { return self.tape().memory().str(); })
      .def("reset_peak", [](const Box& self) { self.tape().reset_peak(); })
      .def_property("memory_budget", [](const Box& self) { return self.tape().memory_budget(); },
                    [](const Box& self, std::size_t b) { self.tape().set_memory_budget(b); },
                    "A cap in bytes (0: none); crossing it raises Error naming the op and line.")
      .def_property("anomaly_detection", [](const Box& self) { return self.tape().anomaly_enabled(); },
                    [](const Box& self, bool on) { self.tape().set_anomaly_enabled(on); })
      .def("__repr__", [](const Box& self) {
        if (!self.open()) return std::string("<tapegrad.Tape (closed)>");
        return fmt::format("<tapegrad.Tape: {} scalar nodes, {} tensor nodes, {} handles>",
                           self.tape().scalar_count() - 1, self.tape().tensor_count(), self.live());
      });

  py::class_<FlagScope>(m, "_FlagScope")
      .def("__enter__", [](FlagScope& s) { s.enter(); return &s; }, py::return_value_policy::reference)
      .def("__exit__", [](FlagScope& s, py::args) { s.exit(); });
  m.def("no_grad", [](py::object tape) {
        return FlagScope{tape.is_none() ? current_box() : tape.cast<BoxPtr>(), false, false};
      }, py::arg("tape") = py::none(),
      "``with tg.no_grad():`` records values without gradients (every node a constant).");
  m.def("detect_anomaly", [](py::object tape) {
        return FlagScope{tape.is_none() ? current_box() : tape.cast<BoxPtr>(), true, true};
      }, py::arg("tape") = py::none(),
      "``with tg.detect_anomaly():`` checks every value and gradient for NaN and infinity.");

  // ---- Scalar ----
  py::class_<PyScalar> scalar(m, "Scalar", R"(A number on a tape. Arithmetic records nodes; backward() fills .grad.

``tg.Scalar(2.0)`` is a variable (it takes gradients) on the current tape;
``requires_grad=False`` makes a constant.)");
  scalar
      .def(py::init([](double v, bool requires_grad, py::object tape) {
             BoxPtr box = tape.is_none() ? current_box() : tape.cast<BoxPtr>();
             box->maybe_compact();
             Tape& t = box->tape();
             const Site where = python_site();
             return PyScalar(requires_grad ? t.variable(v, where) : t.constant(v, where), box);
           }),
           py::arg("value"), py::arg("requires_grad") = true, py::arg("tape") = py::none())
      .def_property_readonly("value", [](const PyScalar& s) { return s.get().value(); })
      .def_property_readonly("data", [](const PyScalar& s) { return s.get().value(); },
                             "The value (micrograd's name for it).")
      .def_property_readonly("grad", [](const PyScalar& s) { return s.get().grad(); })
      .def_property_readonly("is_leaf", [](const PyScalar& s) { return s.get().is_leaf(); })
      .def_property_readonly("op", [](const PyScalar& s) { return scalar_op_name(s.get().op()); })
      .def_property_readonly("tape", [](const PyScalar& s) { return s.box; })
      .def_property_readonly("node", [](const PyScalar& s) { return fmt::format("s{}", s.get().index()); },
                             "The node's id on its tape, as traces and DOT graphs name it.")
      .def("set_value", [](PyScalar& s, double v) { s.get(); s.h.set_value(v); },
           "Replaces a leaf's value.")
      .def("backward", [](const PyScalar& s) {
             s.box->maybe_compact();  // renumbers s too
             s.get().backward();
           },
           "Sweeps the tape backwards from this node; gradients accumulate.")
      .def("named", [](py::object self, std::string name) {
             PyScalar& s = self.cast<PyScalar&>();
             s.get();
             s.h.named(std::move(name));
             return self;
           }, "Names the node for graphs and traces; returns it.")
      .def("detach", [](const PyScalar& s) { return PyScalar(detach(s.get(), python_site()), s.box); })
      .def("__float__", [](const PyScalar& s) { return s.get().value(); })
      .def("__bool__", [](const PyScalar&) -> bool {
        throw py::type_error(
            "the truth value of a Scalar is ambiguous: compare it (x > 0), which the tape records "
            "for replay, or test x.value");
      })
      .def("__hash__", [](py::handle self) { return py::hash(py::int_(reinterpret_cast<std::uintptr_t>(self.ptr()))); })
      .def("__repr__", [](const PyScalar& s) {
        if (!s.box->open()) return std::string("Scalar(<closed tape>)");
        const Scalar& h = s.h;
        const Tape& t = s.box->tape();
        if (!t.is_live_scalar(h.index(), h.generation())) return std::string("Scalar(<stale>)");
        return fmt::format("Scalar(value={:.6g}, grad={:.6g})", h.value(), h.grad());
      });

  // ---- Tensor ----
  py::class_<PyTensor> tensor_cls(m, "Tensor", R"(A float32 or float64 array on a tape.

Made from NumPy arrays with ``tg.tensor(a)``: a C-contiguous float32/float64 array
is used in place (no copy; the tape reads its memory); anything else is copied.
``.value`` and ``.grad`` are read-only NumPy views of the tape's memory, valid while
the tape keeps the node (until it is cleared or rewound below it).)");
  tensor_cls
      .def_property_readonly("value", [](py::object self) {
             return tensor_view(self.cast<const PyTensor&>(), false, self);
           })
      .def_property_readonly("grad", [](py::object self) {
             return tensor_view(self.cast<const PyTensor&>(), true, self);
           })
      .def("numpy", [](py::object self) { return tensor_view(self.cast<const PyTensor&>(), false, self); },
           "The values as a read-only NumPy view (no copy).")
      .def("__array__", [](py::object self, py::object dtype) {
             py::array v = tensor_view(self.cast<const PyTensor&>(), false, self);
             return dtype.is_none() ? v : py::array(v.attr("astype")(dtype));
           }, py::arg("dtype") = py::none())
      .def_property_readonly("shape", [](const PyTensor& t) {
        const Shape s = t.get().shape();
        py::tuple out(s.rank());
        for (int i = 0; i < s.rank(); ++i) out[i] = s[i];
        return out;
      })
      .def_property_readonly("dtype", [](const PyTensor& t) {
        return t.get().dtype() == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
      })
      .def_property_readonly("ndim", [](const PyTensor& t) { return t.get().rank(); })
      .def_property_readonly("size", [](const PyTensor& t) { return t.get().numel(); })
      .def("__len__", [](const PyTensor& t) {
        const Shape s = t.get().shape();
        if (s.rank() == 0) throw py::type_error("len() of a rank-0 Tensor");
        return s[0];
      })
      .def_property_readonly("requires_grad", [](const PyTensor& t) { return t.get().requires_grad(); })
      .def_property_readonly("tape", [](const PyTensor& t) { return t.box; })
      .def_property_readonly("node", [](const PyTensor& t) { return fmt::format("t{}", t.get().index()); })
      .def_property_readonly("op", [](const PyTensor& t) { return std::string(t.get().node().op->name); })
      .def("item", [](const PyTensor& t) { return PyScalar(t.get().item(python_site()), t.box); },
           "The one element as a differentiable Scalar.")
      .def("backward", [](const PyTensor& t, py::object seed) {
             if (seed.is_none()) return t.get().backward();
             PyTensor s = py::isinstance<PyTensor>(seed)
                              ? seed.cast<PyTensor>()
                              : tensor_from_array(seed, false, py::none(), t.box);
             t.get().backward(s.get());
           }, py::arg("seed") = py::none(),
           "Sweeps backwards from this tensor: one element, or with a seed of its shape.")
      .def("named", [](py::object self, std::string name) {
             PyTensor& t = self.cast<PyTensor&>();
             t.get();
             t.h.named(std::move(name));
             return self;
           })
      .def("detach", [](const PyTensor& t) { return PyTensor(detach(t.get(), python_site()), t.box); })
      .def("__repr__", [](py::object self) {
        const PyTensor& t = self.cast<const PyTensor&>();
        if (!t.box->open()) return std::string("Tensor(<closed tape>)");
        const Tensor& h = t.h;
        try {
          h.checked();
        } catch (const Error&) {
          return std::string("Tensor(<stale>)");
        }
        std::string v = py::str(tensor_view(t, false, self));
        return fmt::format("Tensor({}, dtype={}{})", v, h.dtype() == DType::f32 ? "float32" : "float64",
                           h.requires_grad() ? ", requires_grad=True" : "");
      });

  m.def("tensor", [](py::object data, bool requires_grad, py::object dtype, py::object tape) {
        return tensor_from_array(data, requires_grad, dtype,
                                 tape.is_none() ? current_box() : tape.cast<BoxPtr>());
      }, py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none(),
      py::arg("tape") = py::none(),
      R"(A tensor leaf from a NumPy array or nested sequence.

A C-contiguous, writeable float32/float64 array (of the dtype asked for) is used in
place: no copy, and the tape reads its memory, so changing the array changes the leaf
(replay sees it). Its gradient goes to a NumPy array of its own, ``.grad``. Any other
array (integers, another dtype, a strided view) is copied.)");
  const auto filled = [](const char* name, auto make) {
    return [name, make](py::object shape, py::object dtype, bool requires_grad, py::object tape) {
      (void)name;
      BoxPtr box = tape.is_none() ? current_box() : tape.cast<BoxPtr>();
      std::vector<std::int64_t> dims;
      if (py::isinstance<py::int_>(shape)) dims.push_back(shape.cast<std::int64_t>());
      else dims = shape.cast<std::vector<std::int64_t>>();
      return on_box(box, [&](Tape&) {
        return PyTensor(make(Shape(std::span<const std::int64_t>(dims)),
                             TensorOptions{.dtype = parse_dtype(dtype), .requires_grad = requires_grad}),
                        box);
      });
    };
  };
  m.def("zeros", filled("zeros", [](const Shape& s, TensorOptions o) { return zeros(s, o, python_site()); }),
        py::arg("shape"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        py::arg("tape") = py::none());
  m.def("ones", filled("ones", [](const Shape& s, TensorOptions o) { return ones(s, o, python_site()); }),
        py::arg("shape"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        py::arg("tape") = py::none());
  m.def("randn", [](py::object shape, std::uint64_t seed, double stddev, py::object dtype,
                    bool requires_grad, py::object tape) {
        BoxPtr box = tape.is_none() ? current_box() : tape.cast<BoxPtr>();
        std::vector<std::int64_t> dims = py::isinstance<py::int_>(shape)
                                             ? std::vector<std::int64_t>{shape.cast<std::int64_t>()}
                                             : shape.cast<std::vector<std::int64_t>>();
        return on_box(box, [&](Tape&) {
          return PyTensor(randn(Shape(std::span<const std::int64_t>(dims)), seed, stddev,
                                {.dtype = parse_dtype(dtype), .requires_grad = requires_grad},
                                python_site()),
                          box);
        });
      }, py::arg("shape"), py::arg("seed"), py::arg("stddev") = 1.0, py::arg("dtype") = py::none(),
      py::arg("requires_grad") = false, py::arg("tape") = py::none(),
      "Normal(0, stddev) values from a seeded generator: the same seed, the same tensor.");

  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads the calling thread uses for matrix products and optimiser updates (n <= 0: all "
        "cores), as `tapegrad train --threads`.");
  m.def("num_threads", &num_threads);
  m.def("_site_layout_ok", [] { return kSiteLayout; });
  m.def("_drop_default_tapes", &drop_default_boxes);
}

}  // namespace tapegrad::python

PYBIND11_MODULE(_tapegrad, m) {
  using namespace tapegrad::python;
  m.doc() = "tapegrad: reverse-mode automatic differentiation on a tape (C++ engine).";
  bind_core(m);
  bind_math(m);
  bind_derivatives(m);
  bind_inspect(m);
  py::module_ nn = m.def_submodule("nn", "Layers, losses, optimisers, data sets and the trainer.");
  bind_nn(nn);
}
