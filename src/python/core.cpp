// The tapegrad Python module: tapes, Scalar and Tensor handles and the C++
// errors as Python exceptions (the handles' machinery is in tape.cpp). The
// other binding files add the math functions, the derivatives, inspection
// and nn.
#include <cstring>

#include "python/bind.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::python {

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

  py::class_<Box, BoxPtr>(m, "Tape",
                          R"(A tape: the record of every operation, swept backwards for gradients.

Each thread has a default tape; ``with tg.Tape() as t:`` records on ``t`` instead.
A tape whose nodes no Python handle refers to any more is cleared, so graphs built
and dropped in a loop do not accumulate.)")
      .def(py::init<>())
      .def_static("current", &current_box, "The tape new leaves go on.")
      .def("__enter__",
           [](BoxPtr self) {
             push_box(self);
             return self;
           })
      .def("__exit__", [](const BoxPtr&, py::args) { pop_box(); })
      .def(
          "variable",
          [](const BoxPtr& self, double v) {
            self->maybe_compact();
            return PyScalar(self->tape().variable(v, python_site()), self);
          },
          py::arg("value"), "A scalar leaf that takes gradients.")
      .def(
          "constant",
          [](const BoxPtr& self, double v) {
            self->maybe_compact();
            return PyScalar(self->tape().constant(v, python_site()), self);
          },
          py::arg("value"), "A scalar leaf that takes no gradient.")
      .def(
          "clear",
          [](Box& self) {
            self.tape();
            self.clear();
          },
          "Drops every node; existing handles become stale (using one raises Error).")
      .def("mark", &Box::mark, "A position to rewind to (the tape is then never compacted).")
      .def(
          "rewind",
          [](Box& self, const Mark& mk) {
            self.tape();
            self.rewind(mk);
          },
          "Drops the nodes recorded after the mark.")
      .def("zero_grad", [](const Box& self) { self.tape().zero_grad(); })
      .def_property_readonly("scalar_count",
                             [](const Box& self) { return self.tape().scalar_count(); })
      .def_property_readonly("tensor_count",
                             [](const Box& self) { return self.tape().tensor_count(); })
      .def_property_readonly("handles", &Box::live, "Live Python handles to this tape's nodes.")
      .def_property_readonly("compactions", &Box::compactions,
                             "How often the tape was compacted (unreachable nodes dropped).")
      .def(
          "memory", [](const Box& self) { return memory_dict(self.tape().memory()); },
          "What the tape holds, by part, its peak, and its nodes by op.")
      .def("memory_report", [](const Box& self) { return self.tape().memory().str(); })
      .def("reset_peak", [](const Box& self) { self.tape().reset_peak(); })
      .def_property(
          "memory_budget", [](const Box& self) { return self.tape().memory_budget(); },
          [](const Box& self, std::size_t b) { self.tape().set_memory_budget(b); },
          "A cap in bytes (0: none); crossing it raises Error naming the op and line.")
      .def_property(
          "anomaly_detection", [](const Box& self) { return self.tape().anomaly_enabled(); },
          [](const Box& self, bool on) { self.tape().set_anomaly_enabled(on); })
      .def("__repr__", [](const Box& self) {
        if (!self.open()) return std::string("<tapegrad.Tape (closed)>");
        return fmt::format("<tapegrad.Tape: {} scalar nodes, {} tensor nodes, {} handles>",
                           self.tape().scalar_count() - 1, self.tape().tensor_count(), self.live());
      });

  py::class_<FlagScope>(m, "_FlagScope")
      .def(
          "__enter__",
          [](FlagScope& s) {
            s.enter();
            return &s;
          },
          py::return_value_policy::reference)
      .def("__exit__", [](FlagScope& s, py::args) { s.exit(); });
  m.def(
      "no_grad",
      [](py::object tape) {
        return FlagScope{tape_or_current(tape), false, false};
      },
      py::arg("tape") = py::none(),
      "``with tg.no_grad():`` records values without gradients (every node a constant).");
  m.def(
      "detect_anomaly",
      [](py::object tape) {
        return FlagScope{tape_or_current(tape), true, true};
      },
      py::arg("tape") = py::none(),
      "``with tg.detect_anomaly():`` checks every value and gradient for NaN and infinity.");

  // ---- Scalar ----
  py::class_<PyScalar> scalar(
      m, "Scalar", R"(A number on a tape. Arithmetic records nodes; backward() fills .grad.

``tg.Scalar(2.0)`` is a variable (it takes gradients) on the current tape;
``requires_grad=False`` makes a constant.)");
  scalar
      .def(py::init([](double v, bool requires_grad, py::object tape) {
             BoxPtr box = tape_or_current(tape);
             box->maybe_compact();
             Tape& t = box->tape();
             const Site where = python_site();
             return PyScalar(requires_grad ? t.variable(v, where) : t.constant(v, where), box);
           }),
           py::arg("value"), py::arg("requires_grad") = true, py::arg("tape") = py::none())
      .def_property_readonly("value", [](const PyScalar& s) { return s.get().value(); })
      .def_property_readonly(
          "data", [](const PyScalar& s) { return s.get().value(); },
          "The value (micrograd's name for it).")
      .def_property_readonly("grad", [](const PyScalar& s) { return s.get().grad(); })
      .def_property_readonly("is_leaf", [](const PyScalar& s) { return s.get().is_leaf(); })
      .def_property_readonly("op", [](const PyScalar& s) { return scalar_op_name(s.get().op()); })
      .def_property_readonly("tape", [](const PyScalar& s) { return s.box; })
      .def_property_readonly(
          "node", [](const PyScalar& s) { return fmt::format("s{}", s.get().index()); },
          "The node's id on its tape, as traces and DOT graphs name it.")
      .def(
          "set_value",
          [](PyScalar& s, double v) {
            s.get();
            s.h.set_value(v);
          },
          "Replaces a leaf's value.")
      .def(
          "backward",
          [](const PyScalar& s) {
            s.box->maybe_compact();  // renumbers s too
            s.get().backward();
          },
          "Sweeps the tape backwards from this node; gradients accumulate.")
      .def(
          "named",
          [](py::object self, std::string name) {
            PyScalar& s = self.cast<PyScalar&>();
            s.get();
            s.h.named(std::move(name));
            return self;
          },
          "Names the node for graphs and traces; returns it.")
      .def("detach",
           [](const PyScalar& s) { return PyScalar(detach(s.get(), python_site()), s.box); })
      .def("__float__", [](const PyScalar& s) { return s.get().value(); })
      .def("__bool__",
           [](const PyScalar&) -> bool {
             throw py::type_error(
                 "the truth value of a Scalar is ambiguous: compare it (x > 0), which the tape "
                 "records "
                 "for replay, or test x.value");
           })
      .def("__hash__",
           [](py::handle self) {
             return py::hash(py::int_(reinterpret_cast<std::uintptr_t>(self.ptr())));
           })
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
      .def_property_readonly(
          "value",
          [](py::object self) { return tensor_view(self.cast<const PyTensor&>(), false, self); })
      .def_property_readonly(
          "grad",
          [](py::object self) { return tensor_view(self.cast<const PyTensor&>(), true, self); })
      .def(
          "numpy",
          [](py::object self) { return tensor_view(self.cast<const PyTensor&>(), false, self); },
          "The values as a read-only NumPy view (no copy).")
      .def(
          "__array__",
          [](py::object self, py::object dtype) {
            py::array v = tensor_view(self.cast<const PyTensor&>(), false, self);
            return dtype.is_none() ? v : py::array(v.attr("astype")(dtype));
          },
          py::arg("dtype") = py::none())
      .def_property_readonly("shape",
                             [](const PyTensor& t) {
                               const Shape s = t.get().shape();
                               py::tuple out(s.rank());
                               for (int i = 0; i < s.rank(); ++i) out[i] = s[i];
                               return out;
                             })
      .def_property_readonly("dtype",
                             [](const PyTensor& t) {
                               return t.get().dtype() == DType::f32 ? py::dtype::of<float>()
                                                                    : py::dtype::of<double>();
                             })
      .def_property_readonly("ndim", [](const PyTensor& t) { return t.get().rank(); })
      .def_property_readonly("size", [](const PyTensor& t) { return t.get().numel(); })
      .def("__len__",
           [](const PyTensor& t) {
             const Shape s = t.get().shape();
             if (s.rank() == 0) throw py::type_error("len() of a rank-0 Tensor");
             return s[0];
           })
      .def_property_readonly("requires_grad",
                             [](const PyTensor& t) { return t.get().requires_grad(); })
      .def_property_readonly("tape", [](const PyTensor& t) { return t.box; })
      .def_property_readonly("node",
                             [](const PyTensor& t) { return fmt::format("t{}", t.get().index()); })
      .def_property_readonly("op",
                             [](const PyTensor& t) { return std::string(t.get().node().op->name); })
      .def(
          "item", [](const PyTensor& t) { return PyScalar(t.get().item(python_site()), t.box); },
          "The one element as a differentiable Scalar.")
      .def(
          "backward",
          [](const PyTensor& t, py::object seed) {
            if (seed.is_none()) return t.get().backward();
            PyTensor s = py::isinstance<PyTensor>(seed)
                             ? seed.cast<PyTensor>()
                             : tensor_from_array(seed, false, py::none(), t.box);
            t.get().backward(s.get());
          },
          py::arg("seed") = py::none(),
          "Sweeps backwards from this tensor: one element, or with a seed of its shape.")
      .def("named",
           [](py::object self, std::string name) {
             PyTensor& t = self.cast<PyTensor&>();
             t.get();
             t.h.named(std::move(name));
             return self;
           })
      .def("detach",
           [](const PyTensor& t) { return PyTensor(detach(t.get(), python_site()), t.box); })
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
        return fmt::format("Tensor({}, dtype={}{})", v,
                           h.dtype() == DType::f32 ? "float32" : "float64",
                           h.requires_grad() ? ", requires_grad=True" : "");
      });

  // NumPy's operators and ufuncs must not turn a Tensor into a plain array
  // (through __array__) and drop its gradient: with __array_ufunc__ = None,
  // `array * t` comes to Tensor.__rmul__ and `np.exp(t)` raises TypeError.
  tensor_cls.attr("__array_ufunc__") = py::none();

  m.def(
      "tensor",
      [](py::object data, bool requires_grad, py::object dtype, py::object tape) {
        return tensor_from_array(data, requires_grad, dtype, tape_or_current(tape));
      },
      py::arg("data"), py::arg("requires_grad") = false, py::arg("dtype") = py::none(),
      py::arg("tape") = py::none(),
      R"(A tensor leaf from a NumPy array or nested sequence.

A C-contiguous, writeable float32/float64 array (of the dtype asked for) is used in
place: no copy, and the tape reads its memory, so changing the array changes the leaf
(replay sees it). Its gradient goes to a NumPy array of its own, ``.grad``. Any other
array (integers, another dtype, a strided view) is copied.)");
  const auto filled = [](auto make) {
    return [make](py::object shape, py::object dtype, bool requires_grad, py::object tape) {
      BoxPtr box = tape_or_current(tape);
      return on_box(box, [&](Tape&) {
        return PyTensor(make(parse_shape(shape), TensorOptions{.dtype = parse_dtype(dtype),
                                                               .requires_grad = requires_grad}),
                        box);
      });
    };
  };
  m.def("zeros", filled([](const Shape& s, TensorOptions o) { return zeros(s, o, python_site()); }),
        py::arg("shape"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        py::arg("tape") = py::none());
  m.def("ones", filled([](const Shape& s, TensorOptions o) { return ones(s, o, python_site()); }),
        py::arg("shape"), py::arg("dtype") = py::none(), py::arg("requires_grad") = false,
        py::arg("tape") = py::none());
  m.def(
      "randn",
      [](py::object shape, std::uint64_t seed, double stddev, py::object dtype, bool requires_grad,
         py::object tape) {
        BoxPtr box = tape_or_current(tape);
        return on_box(box, [&](Tape&) {
          return PyTensor(
              randn(parse_shape(shape), seed, stddev,
                    {.dtype = parse_dtype(dtype), .requires_grad = requires_grad}, python_site()),
              box);
        });
      },
      py::arg("shape"), py::arg("seed"), py::arg("stddev") = 1.0, py::arg("dtype") = py::none(),
      py::arg("requires_grad") = false, py::arg("tape") = py::none(),
      "Normal(0, stddev) values from a seeded generator: the same seed, the same tensor.");

  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads the calling thread uses for matrix products and optimiser updates (n <= 0: all "
        "cores), as `tapegrad train --threads`.");
  m.def("num_threads", &num_threads);
  m.def("_site_layout_ok", &python_sites_available);
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
