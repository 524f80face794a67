// Beyond backward(): jvp, vjp, jacobian, hvp and hessian on recorded graphs,
// and Function, a Python callable recorded once and replayed at new points.
#include <optional>

#include "python/bind.hpp"

namespace tapegrad::python {

namespace {

// One handle or a sequence of them, as Refs.
std::vector<Ref> refs(py::handle obj, const char* what) {
  std::vector<Ref> out;
  if (py::isinstance<PyScalar>(obj) || py::isinstance<PyTensor>(obj)) {
    out.push_back(to_ref(obj, what));
  } else {
    if (!py::isinstance<py::sequence>(obj))
      throw py::type_error(std::string(what) + ": expected a Scalar, a Tensor or a list of them");
    for (py::handle h : obj) out.push_back(to_ref(h, what));
  }
  if (out.empty()) throw py::value_error(std::string(what) + ": an empty list");
  return out;
}
std::int64_t total(const std::vector<Ref>& rs) {
  std::int64_t n = 0;
  for (const Ref& r : rs) n += r.size();
  return n;
}

JacobianMode parse_mode(const std::string& s) {
  if (s == "auto") return JacobianMode::automatic;
  if (s == "forward") return JacobianMode::forward;
  if (s == "reverse") return JacobianMode::reverse;
  throw py::value_error("jacobian: mode must be 'auto', 'forward' or 'reverse', not '" + s + "'");
}

// A Python callable recorded once on a tape of its own.
class PyFunction {
 public:
  PyFunction(py::function f, py::handle x0) {
    const std::vector<double> x = doubles(x0, -1, "Function.record: x0");
    if (x.empty())
      throw py::value_error("Function.record: x0 is empty; give the point to record at");
    box_ = std::make_shared<Box>();
    box_->pin();
    push_box(box_);  // numbers made inside f (tg.Scalar(0.0)) land on this tape
    py::object out;
    try {
      py::list args;
      for (std::size_t i = 0; i < x.size(); ++i) {
        PyScalar s(box_->tape().variable(x[i], python_site()), box_);
        s.h.named(fmt::format("x{}", i));
        inputs_.push_back(s);
        args.append(py::cast(s));
      }
      out = f(args);
    } catch (...) {
      pop_box();
      throw;
    }
    pop_box();
    if (py::isinstance<PyTensor>(out)) {
      const PyTensor& t = out.cast<const PyTensor&>();
      out = py::cast(PyScalar(t.get().item(python_site()), t.box));
    }
    if (!py::isinstance<PyScalar>(out))
      throw py::type_error(
          "Function.record: f must return a Scalar (or a one-element Tensor), got " +
          std::string(py::str(py::type::of(out).attr("__name__"))));
    const PyScalar& o = out.cast<const PyScalar&>();
    if (o.box != box_)
      throw Error(
          "Function.record: f returned a Scalar of another tape; build the result from "
          "the inputs it is given");
    output_.emplace(o);
    std::vector<Scalar> in;
    for (const PyScalar& s : inputs_) in.push_back(s.h);
    fn_ = std::make_unique<Function>(box_->tape(), std::move(in), o.h);
  }

  std::size_t n() const { return inputs_.size(); }

  double value(py::handle x) {
    const std::vector<double> v = doubles(x, static_cast<std::int64_t>(n()), "Function.value: x");
    py::gil_scoped_release nogil;
    return fn_->value(v);
  }

  // One point: (value, gradient). A batch (k x n): (values, gradients),
  // computed without the GIL.
  py::tuple gradient(py::handle x) {
    py::array a = py::array::ensure(x);
    if (a && a.ndim() == 2) {
      auto pts = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(a);
      if (pts.shape(1) != static_cast<py::ssize_t>(n()))
        throw py::value_error(
            fmt::format("Function.gradient: points of {} coordinates for a function of {} inputs",
                        pts.shape(1), n()));
      const py::ssize_t k = pts.shape(0);
      py::array_t<double> values(k);
      py::array_t<double> grads({k, static_cast<py::ssize_t>(n())});
      const double* src = pts.data();
      double* vs = values.mutable_data();
      double* gs = grads.mutable_data();
      {
        py::gil_scoped_release nogil;
        for (py::ssize_t i = 0; i < k; ++i)
          vs[i] = fn_->gradient(std::span<const double>(src + i * n(), n()),
                                std::span<double>(gs + i * n(), n()));
      }
      return py::make_tuple(values, grads);
    }
    const std::vector<double> v =
        doubles(x, static_cast<std::int64_t>(n()), "Function.gradient: x");
    py::array_t<double> g(static_cast<py::ssize_t>(n()));
    double f;
    {
      py::gil_scoped_release nogil;
      f = fn_->gradient(v, std::span<double>(g.mutable_data(), n()));
    }
    return py::make_tuple(f, g);
  }

  double jvp(py::handle x, py::handle v) {
    const std::vector<double> xs = doubles(x, static_cast<std::int64_t>(n()), "Function.jvp: x");
    const std::vector<double> vs = doubles(v, static_cast<std::int64_t>(n()), "Function.jvp: v");
    double d = 0;
    py::gil_scoped_release nogil;
    fn_->jvp(xs, vs, &d);
    return d;
  }

  py::array_t<double> hvp(py::handle x, py::handle v) {
    const std::vector<double> xs = doubles(x, static_cast<std::int64_t>(n()), "Function.hvp: x");
    const std::vector<double> vs = doubles(v, static_cast<std::int64_t>(n()), "Function.hvp: v");
    std::vector<double> hv(n());
    {
      py::gil_scoped_release nogil;
      fn_->hvp(xs, vs, hv);
    }
    return to_numpy(hv);
  }

  py::array_t<double> hessian(py::handle x) {
    const std::vector<double> xs =
        doubles(x, static_cast<std::int64_t>(n()), "Function.hessian: x");
    std::vector<double> h(n() * n());
    {
      py::gil_scoped_release nogil;
      fn_->hessian(xs, h);
    }
    return to_numpy(h, static_cast<std::int64_t>(n()), static_cast<std::int64_t>(n()));
  }

  py::dict optimize() {
    const OptimizeStats s = fn_->optimize();
    py::dict d;
    d["recorded"] = s.recorded;
    d["dead"] = s.dead;
    d["folded"] = s.folded;
    d["merged"] = s.merged;
    d["ops"] = s.ops;
    d["statements"] = s.statements;
    d["comparisons"] = s.comparisons;
    return d;
  }

  const BoxPtr& tape() const { return box_; }
  const PyScalar& output() const { return *output_; }
  const std::vector<PyScalar>& inputs() const { return inputs_; }
  bool optimized() const { return fn_->optimized(); }

 private:
  BoxPtr box_;
  std::vector<PyScalar> inputs_;
  std::optional<PyScalar> output_;
  std::unique_ptr<Function> fn_;
};

}  // namespace

void bind_derivatives(py::module_& m) {
  py::class_<ScalarFunction>(
      m, "ScalarFunction", R"(Your own function of one number, defined by its value and derivatives.

``softplus = tg.ScalarFunction("softplus", value=lambda x: math.log1p(math.exp(x)),
derivative=lambda x, y: 1 / (1 + math.exp(-x)))`` then works on Scalars, element by
element on Tensors, and on floats; it records one node named after it, replays, and
goes to second order when ``second(x, y)`` is given. ``derivative`` and ``second``
get x and the value y. Check it with tg.gradcheck.)")
      .def(py::init([](std::string name, py::function value, py::function derivative,
                       py::object second) {
             auto v = std::make_shared<Held>(std::move(value));
             auto d = std::make_shared<Held>(std::move(derivative));
             ScalarFunctionRules rules;
             // Called from C++ sweeps, possibly without the GIL (a replay).
             rules.value = [v](double x) {
               py::gil_scoped_acquire gil;
               return v->obj(x).cast<double>();
             };
             rules.derivative = [d](double x, double y) {
               py::gil_scoped_acquire gil;
               return d->obj(x, y).cast<double>();
             };
             if (!second.is_none()) {
               auto s2 = std::make_shared<Held>(std::move(second));
               rules.second = [s2](double x, double y) {
                 py::gil_scoped_acquire gil;
                 return s2->obj(x, y).cast<double>();
               };
             }
             return ScalarFunction(std::move(name), std::move(rules));
           }),
           py::arg("name"), py::arg("value"), py::arg("derivative"), py::arg("second") = py::none())
      .def_property_readonly("name", &ScalarFunction::name)
      .def("__call__", [](const ScalarFunction& f,
                          const PyScalar& x) { return PyScalar(f(x.get(), python_site()), x.box); })
      .def("__call__", [](const ScalarFunction& f,
                          const PyTensor& x) { return PyTensor(f(x.get(), python_site()), x.box); })
      .def("__call__", [](const ScalarFunction& f, double x) { return f(x); })
      .def("__repr__",
           [](const ScalarFunction& f) { return "<tapegrad.ScalarFunction '" + f.name() + "'>"; });

  m.def(
      "checkpoint",
      [](py::function f, const PyTensor& x) {
        auto held = std::make_shared<Held>(std::move(f));
        BlockFn block = [held](const Tensor& in) -> Tensor {
          py::gil_scoped_acquire gil;
          // The scratch tape is lent to f for this call only.
          auto box = std::make_shared<Box>(in.tape());
          struct Close {
            BoxPtr b;
            ~Close() { b->close(); }
          } close{box};
          push_box(box);
          py::object r;
          try {
            r = held->obj(PyTensor(in, box));
          } catch (...) {
            pop_box();
            throw;
          }
          pop_box();
          if (!py::isinstance<PyTensor>(r))
            throw py::type_error("checkpoint: the block must return a Tensor");
          return r.cast<const PyTensor&>().get();
        };
        return PyTensor(checkpoint(std::move(block), x.get(), python_site()), x.box);
      },
      py::arg("f"), py::arg("x"),
      R"(f(x) as one node that keeps only its input and output; the backward sweep runs f again.

Activation memory for a second forward, as torch.utils.checkpoint. f must be a pure
function of x (and of parameters it reads): it runs when recorded and at each backward.)");

  m.def(
      "jvp",
      [](py::object outputs, py::object inputs, py::object v) {
        const std::vector<Ref> out = refs(outputs, "jvp: outputs"),
                               in = refs(inputs, "jvp: inputs");
        return to_numpy(jvp(out, in, doubles(v, total(in), "jvp: v")));
      },
      py::arg("outputs"), py::arg("inputs"), py::arg("v"),
      "J v: the outputs' directional derivatives along v (forward mode), flattened.");
  m.def(
      "vjp",
      [](py::object outputs, py::object inputs, py::object u) {
        const std::vector<Ref> out = refs(outputs, "vjp: outputs"),
                               in = refs(inputs, "vjp: inputs");
        return to_numpy(vjp(out, in, doubles(u, total(out), "vjp: u")));
      },
      py::arg("outputs"), py::arg("inputs"), py::arg("u"),
      "u^T J: the gradient of sum_k u_k out_k with respect to the inputs, flattened.");
  m.def(
      "jacobian",
      [](py::object outputs, py::object inputs, const std::string& mode) {
        const std::vector<Ref> out = refs(outputs, "jacobian: outputs"),
                               in = refs(inputs, "jacobian: inputs");
        return to_numpy(jacobian(out, in, parse_mode(mode)), total(out), total(in));
      },
      py::arg("outputs"), py::arg("inputs"), py::arg("mode") = "auto",
      "The Jacobian (output elements x input elements) as a NumPy array.");
  m.def(
      "hvp",
      [](py::object output, py::object inputs, py::object v) {
        const std::vector<Ref> in = refs(inputs, "hvp: inputs");
        return to_numpy(hvp(to_ref(output, "hvp: output"), in, doubles(v, total(in), "hvp: v")));
      },
      py::arg("output"), py::arg("inputs"), py::arg("v"),
      "H v for a one-element output (forward over reverse).");
  m.def(
      "hessian",
      [](py::object output, py::object inputs) {
        const std::vector<Ref> in = refs(inputs, "hessian: inputs");
        const std::int64_t n = total(in);
        return to_numpy(hessian(to_ref(output, "hessian: output"), in), n, n);
      },
      py::arg("output"), py::arg("inputs"), "The dense Hessian of a one-element output.");

  py::class_<PyFunction>(m, "Function",
                         R"(A Python function of n numbers, recorded once and replayed.

``fn = tg.Function.record(f, x0)`` calls ``f`` once with a list of n Scalars (at x0)
and keeps the tape; ``fn.gradient(x)`` then replays it at a new point with no Python
running. Comparisons of Scalars inside ``f`` are recorded: a replay at which one
would go the other way raises BranchChanged, naming the line of ``f``.)")
      .def_static(
          "record", [](py::function f, py::object x0) { return new PyFunction(f, x0); },
          py::arg("f"), py::arg("x0"))
      .def("value", &PyFunction::value, py::arg("x"))
      .def("__call__", &PyFunction::value, py::arg("x"))
      .def("gradient", &PyFunction::gradient, py::arg("x"),
           "(f(x), grad) at one point; (values, gradients) for a (k, n) array of points.")
      .def("jvp", &PyFunction::jvp, py::arg("x"), py::arg("v"))
      .def("hvp", &PyFunction::hvp, py::arg("x"), py::arg("v"))
      .def("hessian", &PyFunction::hessian, py::arg("x"))
      .def("optimize", &PyFunction::optimize,
           "Compiles the tape into a program (dead code dropped, constants folded, chains "
           "preaccumulated); returns what it did.")
      .def_property_readonly("optimized", &PyFunction::optimized)
      .def_property_readonly("n_inputs", &PyFunction::n)
      .def_property_readonly("tape", &PyFunction::tape)
      .def_property_readonly("output", &PyFunction::output)
      .def_property_readonly("inputs", &PyFunction::inputs);
}

}  // namespace tapegrad::python
