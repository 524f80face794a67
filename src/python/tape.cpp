// What the binding keeps beside each tape (Box: lifetime, reclaiming dead
// graphs, the current tape), Python lines as Sites, and the conversions
// between NumPy and the engine that every binding file uses.
#include <cstring>
#include <unordered_map>

#include "python/bind.hpp"

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
    if (t.is_live_scalar(l->handle->index(), l->handle->generation()))
      reached[l->handle->index()] = 1;
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
    to[r.from] = t.push_scalar(op, to[r.e.a_op & Tape::kIndexMask], to[r.e.b], r.e.da, r.e.db,
                               r.value, Site{});
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
  Boxes() = default;
  Boxes(const Boxes&) = delete;
  Boxes& operator=(const Boxes&) = delete;
  // Runs when the thread ends, without the GIL: a Box may hold Python
  // objects (arrays a tensor uses in place), so they are released with the
  // GIL taken, or, once the interpreter is gone, left alone.
  ~Boxes() {
    if (!fallback && with.empty()) return;
    if (Py_IsInitialized()) {
      py::gil_scoped_acquire gil;
      scopes.clear();
      with.clear();
      fallback.reset();
    } else {
      for (BoxPtr& b : with) new BoxPtr(std::move(b));  // NOLINT: deliberately kept
      if (fallback) new BoxPtr(std::move(fallback));    // NOLINT: deliberately kept
    }
  }
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
    return std::hash<const void*>()(k.code) ^
           (static_cast<std::size_t>(k.line) * 0x9e3779b97f4a7c15ull);
  }
};
}  // namespace

bool python_sites_available() { return kSiteLayout; }

Site python_site() {
  if (!kSiteLayout) return {};
  PyFrameObject* frame = PyEval_GetFrame();  // borrowed; the GIL is held
  if (!frame) return {};
  PyCodeObject* code = PyFrame_GetCode(frame);  // new reference
  const int line = PyFrame_GetLineNumber(frame);
  // The records live for the process: nodes of any tape may point at them.
  // The map holds a reference to each code object, so an address is never
  // reused for another function while it is a key.
  static auto* records =
      new std::unordered_map<CodeLine, std::unique_ptr<SiteText>, CodeLineHash>();
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

Shape parse_shape(py::handle shape) {
  const std::vector<std::int64_t> dims = py::isinstance<py::int_>(shape)
                                             ? std::vector<std::int64_t>{shape.cast<std::int64_t>()}
                                             : shape.cast<std::vector<std::int64_t>>();
  return Shape(std::span<const std::int64_t>(dims));
}

BoxPtr tape_or_current(py::handle tape) {
  return tape.is_none() ? current_box() : tape.cast<BoxPtr>();
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
    throw py::value_error(
        fmt::format("tensor: {} axes; tapegrad tensors have at most {}", a.ndim(), kMaxRank));
  return Shape(std::span<const std::int64_t>(dims));
}
}  // namespace

PyTensor tensor_from_array(py::handle obj, bool requires_grad, py::object dtype, BoxPtr box) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::type_error("tensor: expected a NumPy array or a nested sequence of numbers");
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(
        fmt::format("tensor: tapegrad tensors hold real numbers; got an array of dtype {}",
                    std::string(py::str(a.dtype()))));
  const DType want = dtype.is_none()
                         ? (a.dtype().is(py::dtype::of<float>()) ? DType::f32 : DType::f64)
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
    Tensor t = external(shape, want, a.mutable_data(),
                        requires_grad ? grad.mutable_data() : nullptr, nullptr, where);
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

}  // namespace tapegrad::python
