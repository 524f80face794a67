// Arithmetic, comparisons and every math function of the op table, on
// Scalar, on Tensor and on plain floats, plus the tensor-only ops. The
// function list comes from TAPEGRAD_SCALAR_OPS, so an op added to the table
// reaches Python without a line here.
#include "python/bind.hpp"

namespace tapegrad::python {

namespace {

// Scalar nodes keep a source line only under anomaly detection (tape.hpp);
// looking up the Python frame costs more than recording the node, so only
// then. Tensor nodes and comparisons always keep theirs.
Site scalar_site(const Tape& t) { return t.anomaly_enabled() ? python_site() : Site{}; }

template <ScalarOp O>
PyScalar unary(const PyScalar& x) {
  const Scalar& a = x.get();
  return {detail::unary_op<O>(a, scalar_site(a.tape())), x.box};
}
template <ScalarOp O>
PyScalar binary(const PyScalar& x, const PyScalar& y) {
  const Scalar& a = x.get();
  return {detail::binary_op<O>(a, y.get(), scalar_site(a.tape())), x.box};
}
template <ScalarOp O>
PyScalar binary(const PyScalar& x, double c) {
  const Scalar& a = x.get();
  return {detail::binary_op<O>(a, c, scalar_site(a.tape())), x.box};
}
template <ScalarOp O>
PyScalar binary(double c, const PyScalar& x) {
  const Scalar& a = x.get();
  return {detail::binary_op<O>(c, a, scalar_site(a.tape())), x.box};
}

bool compare(Compare how, const PyScalar& x, const PyScalar& y) {
  return detail::compare(how, x.get(), y.get(), python_site());
}
bool compare(Compare how, const PyScalar& x, double c) {
  return detail::compare(how, x.get(), c, python_site());
}

// A plain number as a rank-0 constant of t's dtype on t's tape.
Tensor number_like(const Tensor& t, double c, Site where) {
  TapeScope scope(t.tape());
  return full(Shape{}, c, {.dtype = t.dtype()}, where);
}
PyTensor wrap(Tensor t, const PyTensor& like) { return {t, like.box}; }

// A Tensor operand from a Tensor, a Scalar (broadcast as rank 0), a number
// or an array (a constant on `like`'s tape).
Tensor operand(py::handle obj, const PyTensor& like, Site where) {
  if (py::isinstance<PyTensor>(obj)) return obj.cast<const PyTensor&>().get();
  if (py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj))
    return number_like(like.get(), obj.cast<double>(), where);
  PyTensor t = tensor_from_array(obj, false, py::none(), like.box);
  return t.get();
}

using TensorFn2 = Tensor (*)(const Tensor&, const Tensor&, Site);

template <TensorFn2 F>
void tensor_binary(py::class_<PyTensor>& cls, const char* name, const char* rname) {
  cls.def(
      name,
      [](const PyTensor& a, const PyScalar& s) {
        const Site w = python_site();
        if constexpr (F == static_cast<TensorFn2>(&mul)) return wrap(scale(s.get(), a.get(), w), a);
        TapeScope scope(a.get().tape());
        // A Scalar beside a tensor: broadcast through a rank-0 tensor that is
        // the Scalar times one, so the gradient reaches it.
        Tensor one = full(Shape{}, 1.0, {.dtype = a.get().dtype()}, w);
        return wrap(F(a.get(), scale(s.get(), one, w), w), a);
      },
      py::is_operator());
  cls.def(
      name,
      [](const PyTensor& a, py::object b) {
        const Site w = python_site();
        return wrap(F(a.get(), operand(b, a, w), w), a);
      },
      py::is_operator());
  cls.def(
      rname,
      [](const PyTensor& a, py::object b) {
        const Site w = python_site();
        if (py::isinstance<PyScalar>(b)) {
          const PyScalar& s = b.cast<const PyScalar&>();
          if constexpr (F == static_cast<TensorFn2>(&mul))
            return wrap(scale(s.get(), a.get(), w), a);
          TapeScope scope(a.get().tape());
          Tensor one = full(Shape{}, 1.0, {.dtype = a.get().dtype()}, w);
          return wrap(F(scale(s.get(), one, w), a.get(), w), a);
        }
        return wrap(F(operand(b, a, w), a.get(), w), a);
      },
      py::is_operator());
}

}  // namespace

void bind_math(py::module_& m) {
  auto scalar = py::class_<PyScalar>(m.attr("Scalar"));
  auto tensor = py::class_<PyTensor>(m.attr("Tensor"));

  // ---- Scalar operators: add distributes, mul switches, ... ----
#define TAPEGRAD_PY_OPERATOR(py_name, py_rname, op)                                               \
  scalar.def(py_name, py::overload_cast<const PyScalar&, const PyScalar&>(&binary<ScalarOp::op>), \
             py::is_operator());                                                                  \
  scalar.def(py_name, py::overload_cast<const PyScalar&, double>(&binary<ScalarOp::op>),          \
             py::is_operator());                                                                  \
  scalar.def(                                                                                     \
      py_rname, [](const PyScalar& x, double c) { return binary<ScalarOp::op>(c, x); },           \
      py::is_operator());
  TAPEGRAD_PY_OPERATOR("__add__", "__radd__", add)
  TAPEGRAD_PY_OPERATOR("__sub__", "__rsub__", sub)
  TAPEGRAD_PY_OPERATOR("__mul__", "__rmul__", mul)
  TAPEGRAD_PY_OPERATOR("__truediv__", "__rtruediv__", div)
  TAPEGRAD_PY_OPERATOR("__pow__", "__rpow__", pow)
#undef TAPEGRAD_PY_OPERATOR
  scalar.def("__neg__", &unary<ScalarOp::neg>);
  scalar.def("__pos__", [](const PyScalar& x) { return x; });
  scalar.def("__abs__", &unary<ScalarOp::abs>);
  // Scalar (op) Tensor: the tensor's operator, mirrored.
  scalar.def(
      "__mul__",
      [](const PyScalar& s, const PyTensor& t) {
        return PyTensor(scale(s.get(), t.get(), python_site()), t.box);
      },
      py::is_operator());

  // Comparisons return a bool and are recorded with the Python line, so a
  // replayed Function knows when a branch taken on one would go the other way.
#define TAPEGRAD_PY_COMPARE(py_name, how)                                                        \
  scalar.def(                                                                                    \
      py_name, [](const PyScalar& x, const PyScalar& y) { return compare(Compare::how, x, y); }, \
      py::is_operator());                                                                        \
  scalar.def(                                                                                    \
      py_name, [](const PyScalar& x, double c) { return compare(Compare::how, x, c); },          \
      py::is_operator());
  TAPEGRAD_PY_COMPARE("__lt__", lt)
  TAPEGRAD_PY_COMPARE("__le__", le)
  TAPEGRAD_PY_COMPARE("__gt__", gt)
  TAPEGRAD_PY_COMPARE("__ge__", ge)
  TAPEGRAD_PY_COMPARE("__eq__", eq)
  TAPEGRAD_PY_COMPARE("__ne__", ne)
#undef TAPEGRAD_PY_COMPARE

  // ---- Tensor operators ----
  tensor_binary<&add>(tensor, "__add__", "__radd__");
  tensor_binary<&sub>(tensor, "__sub__", "__rsub__");
  tensor_binary<&mul>(tensor, "__mul__", "__rmul__");
  tensor_binary<&div>(tensor, "__truediv__", "__rtruediv__");
  tensor.def(
      "__matmul__",
      [](const PyTensor& a, const PyTensor& b) {
        return wrap(matmul(a.get(), b.get(), python_site()), a);
      },
      py::is_operator());
  tensor.def("__neg__", [](const PyTensor& a) { return wrap(neg(a.get(), python_site()), a); });
  tensor.def("__abs__", [](const PyTensor& a) { return wrap(abs(a.get(), python_site()), a); });
  tensor.def(
      "__pow__",
      [](const PyTensor& a, double p) { return wrap(pow(a.get(), p, python_site()), a); },
      py::is_operator());
  tensor.def_property_readonly(
      "T", [](const PyTensor& a) { return wrap(transpose(a.get(), python_site()), a); });
  tensor.def("reshape", [](const PyTensor& a, py::args shape) {
    py::object s = shape.size() == 1 ? py::object(shape[0]) : py::object(shape);
    return wrap(reshape(a.get(), parse_shape(s), python_site()), a);
  });
  tensor.def(
      "sum",
      [](const PyTensor& a, py::object axis, bool keepdims) {
        const Site w = python_site();
        return wrap(axis.is_none() ? sum(a.get(), w) : sum(a.get(), axis.cast<int>(), keepdims, w),
                    a);
      },
      py::arg("axis") = py::none(), py::arg("keepdims") = false);
  tensor.def(
      "mean",
      [](const PyTensor& a, py::object axis, bool keepdims) {
        const Site w = python_site();
        return wrap(
            axis.is_none() ? mean(a.get(), w) : mean(a.get(), axis.cast<int>(), keepdims, w), a);
      },
      py::arg("axis") = py::none(), py::arg("keepdims") = false);

  // ---- the op table's functions ----
  // Scalar in, Scalar out; Tensor in, Tensor out (element by element);
  // float in, float out (the same rule's value).
#define TAPEGRAD_X(name, kind) TAPEGRAD_PY_##kind(name)
#define TAPEGRAD_PY_structural(name)
#define TAPEGRAD_PY_unary_op(name)
#define TAPEGRAD_PY_binary_op(name)
#define TAPEGRAD_PY_unary_fn(name)                                                    \
  m.def(#name, &unary<ScalarOp::name>, py::arg("x"));                                 \
  m.def(                                                                              \
      #name, [](const PyTensor& x) { return wrap(name(x.get(), python_site()), x); }, \
      py::arg("x"));                                                                  \
  m.def(                                                                              \
      #name, [](double x) { return detail::first1<ScalarOp::name>(x).v; }, py::arg("x"));
#define TAPEGRAD_PY_binary_fn(name)                                                           \
  m.def(#name, py::overload_cast<const PyScalar&, const PyScalar&>(&binary<ScalarOp::name>)); \
  m.def(#name, py::overload_cast<const PyScalar&, double>(&binary<ScalarOp::name>));          \
  m.def(#name, [](double c, const PyScalar& x) { return binary<ScalarOp::name>(c, x); });     \
  m.def(#name, [](double a, double b) { return detail::first2<ScalarOp::name>(a, b).v; });
  TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)
#undef TAPEGRAD_X
#undef TAPEGRAD_PY_structural
#undef TAPEGRAD_PY_unary_op
#undef TAPEGRAD_PY_binary_op
#undef TAPEGRAD_PY_unary_fn
#undef TAPEGRAD_PY_binary_fn
  m.def("fmax", py::overload_cast<const PyScalar&, const PyScalar&>(&binary<ScalarOp::max>));
  m.def("fmax", py::overload_cast<const PyScalar&, double>(&binary<ScalarOp::max>));
  m.def("fmin", py::overload_cast<const PyScalar&, const PyScalar&>(&binary<ScalarOp::min>));
  m.def("fmin", py::overload_cast<const PyScalar&, double>(&binary<ScalarOp::min>));

  // Tensor forms of the two-argument functions (element by element,
  // broadcasting), and the tensor-only ops.
#define TAPEGRAD_PY_TENSOR2(py_name, fn)               \
  m.def(py_name, [](const PyTensor& a, py::object b) { \
    const Site w = python_site();                      \
    return wrap(fn(a.get(), operand(b, a, w), w), a);  \
  });
  TAPEGRAD_PY_TENSOR2("atan2", atan2)
  TAPEGRAD_PY_TENSOR2("hypot", hypot)
  TAPEGRAD_PY_TENSOR2("fmod", fmod)
  TAPEGRAD_PY_TENSOR2("maximum", maximum)
  TAPEGRAD_PY_TENSOR2("minimum", minimum)
#undef TAPEGRAD_PY_TENSOR2
  m.def("pow", [](const PyTensor& x, double p) { return wrap(pow(x.get(), p, python_site()), x); });
  m.def(
      "max",
      [](const PyTensor& x, int axis, bool keepdims) {
        return wrap(max(x.get(), axis, keepdims, python_site()), x);
      },
      py::arg("x"), py::arg("axis"), py::arg("keepdims") = false,
      "The largest element along an axis; the gradient goes to the arg-max (first on ties).");
  m.def(
      "leaky_relu",
      [](const PyTensor& x, double slope) {
        return wrap(leaky_relu(x.get(), slope, python_site()), x);
      },
      py::arg("x"), py::arg("slope") = 0.01);
  m.def(
      "sum",
      [](const PyTensor& x, py::object axis, bool keepdims) {
        const Site w = python_site();
        return wrap(axis.is_none() ? sum(x.get(), w) : sum(x.get(), axis.cast<int>(), keepdims, w),
                    x);
      },
      py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false);
  m.def(
      "mean",
      [](const PyTensor& x, py::object axis, bool keepdims) {
        const Site w = python_site();
        return wrap(
            axis.is_none() ? mean(x.get(), w) : mean(x.get(), axis.cast<int>(), keepdims, w), x);
      },
      py::arg("x"), py::arg("axis") = py::none(), py::arg("keepdims") = false);
  m.def("matmul", [](const PyTensor& a, const PyTensor& b) {
    return wrap(matmul(a.get(), b.get(), python_site()), a);
  });
  m.def("transpose", [](const PyTensor& a) { return wrap(transpose(a.get(), python_site()), a); });
  m.def("reshape", [](const PyTensor& a, py::object shape) {
    return wrap(reshape(a.get(), parse_shape(shape), python_site()), a);
  });
  m.def(
      "slice_rows",
      [](const PyTensor& a, std::int64_t b, std::int64_t e) {
        return wrap(slice_rows(a.get(), b, e, python_site()), a);
      },
      "Rows [begin, end) along axis 0.");
  m.def(
      "concat",
      [](const std::vector<const PyTensor*>& xs, int axis) {
        if (xs.empty()) throw Error("concat: no tensors given");
        std::vector<Tensor> hs;
        for (const PyTensor* x : xs) hs.push_back(x->get());
        return wrap(concat(std::span<const Tensor>(hs), axis, python_site()), *xs.front());
      },
      py::arg("tensors"), py::arg("axis") = 0);
  m.def(
      "linear",
      [](const PyTensor& x, const PyTensor& w, const PyTensor* b) {
        return wrap(linear(x.get(), w.get(), b ? b->get() : Tensor(), python_site()), x);
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = nullptr, "x @ weight.T + bias.");
  m.def("softmax", [](const PyTensor& x) { return wrap(softmax(x.get(), python_site()), x); });
  m.def(
      "softmax_cross_entropy",
      [](const PyTensor& logits, py::object labels) {
        auto l =
            py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(labels);
        if (!l) throw py::type_error("softmax_cross_entropy: labels must be an array of integers");
        return wrap(softmax_cross_entropy(
                        logits.get(),
                        std::span<const std::int32_t>(l.data(), static_cast<std::size_t>(l.size())),
                        python_site()),
                    logits);
      },
      py::arg("logits"), py::arg("labels"), "Mean over rows of -log softmax(logits)[label].");
  m.def(
      "bce_with_logits",
      [](const PyTensor& z, py::object y) {
        const Site w = python_site();
        return wrap(bce_with_logits(z.get(), operand(y, z, w), w), z);
      },
      py::arg("logits"), py::arg("targets"));
}

}  // namespace tapegrad::python
