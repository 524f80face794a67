// Proving and seeing gradients from Python: gradcheck and check_nodes, DOT
// graphs, traces and the sweep explorer, as objects a notebook shows.
#include <filesystem>
#include <fstream>

#include "inspect/graph.hpp"
#include "python/bind.hpp"
#include "tapegrad/inspect.hpp"

namespace tapegrad::python {

namespace {

// Tapes that a C++ function lends to Python callbacks for the length of one
// call; closed when the call returns, so a handle kept past it raises.
class Lent {
 public:
  BoxPtr box_for(Tape& t) {
    for (const BoxPtr& b : boxes_)
      if (&b->tape() == &t) return b;
    boxes_.push_back(std::make_shared<Box>(t));
    return boxes_.back();
  }
  ~Lent() {
    for (const BoxPtr& b : boxes_) b->close();
  }

 private:
  std::vector<BoxPtr> boxes_;
};

// Runs f with `box` as the current tape.
py::object call_on(const BoxPtr& box, const py::function& f, const py::list& args) {
  push_box(box);
  try {
    py::object r = f(args);
    pop_box();
    return r;
  } catch (...) {
    pop_box();
    throw;
  }
}

GradcheckOptions options(double eps, double atol, double rtol, int directions, std::uint64_t seed) {
  GradcheckOptions o;
  o.eps = eps;
  o.atol = atol;
  o.rtol = rtol;
  o.directions = directions;
  o.seed = seed;
  return o;
}

bool all_numbers(py::handle inputs) {
  for (py::handle h : inputs)
    if (!py::isinstance<py::float_>(h) && !py::isinstance<py::int_>(h)) return false;
  return true;
}

GradcheckResult run_gradcheck(py::function f, py::object inputs, const GradcheckOptions& opt,
                              bool order2) {
  if (!py::isinstance<py::sequence>(inputs) || py::len(inputs) == 0)
    throw py::type_error("gradcheck: inputs must be a non-empty list of numbers or of arrays");
  Lent lent;
  if (all_numbers(inputs)) {
    // f(list of Scalars) -> Scalar
    std::vector<double> x = inputs.cast<std::vector<double>>();
    ScalarFn fn = [&](std::span<const Scalar> xs) -> Scalar {
      BoxPtr box = lent.box_for(xs[0].tape());
      py::list args;
      for (const Scalar& s : xs) args.append(py::cast(PyScalar(s, box)));
      py::object r = call_on(box, f, args);
      if (!py::isinstance<PyScalar>(r))
        throw py::type_error("gradcheck: with number inputs, f must return a Scalar");
      return r.cast<const PyScalar&>().get();
    };
    return order2 ? gradcheck_order2(fn, x, opt) : gradcheck(fn, x, opt);
  }
  std::vector<GradcheckInput> in;
  std::size_t k = 0;
  for (py::handle h : inputs) {
    py::array a = py::array::ensure(h);
    if (!a) throw py::type_error(fmt::format("gradcheck: input {} is not an array", k));
    std::vector<std::int64_t> dims(a.shape(), a.shape() + a.ndim());
    in.push_back({Shape(std::span<const std::int64_t>(dims)), doubles(a, -1, "gradcheck: input"),
                  fmt::format("x{}", k++)});
  }
  TensorFn fn = [&](std::span<const Tensor> xs) -> Tensor {
    BoxPtr box = lent.box_for(xs[0].tape());
    py::list args;
    for (const Tensor& t : xs) args.append(py::cast(PyTensor(t, box)));
    py::object r = call_on(box, f, args);
    if (py::isinstance<PyScalar>(r)) {
      // A Scalar result (x.sum().item() style): back to a one-element tensor.
      throw py::type_error("gradcheck: with array inputs, f must return a Tensor");
    }
    if (!py::isinstance<PyTensor>(r)) throw py::type_error("gradcheck: f must return a Tensor");
    return r.cast<const PyTensor&>().get();
  };
  return order2 ? gradcheck_order2(fn, in, opt) : gradcheck(fn, in, opt);
}

// DOT text as an object: a notebook draws it (_repr_svg_), save() writes it.
struct Graph {
  std::string dot;
};

std::string escape_attr(const std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

DotOptions dot_options(const std::string& title, bool collapse, int max_entries) {
  DotOptions o;
  o.title = title;
  o.collapse_scopes = collapse;
  o.max_entries = max_entries;
  return o;
}

template <class F>
auto on_root(py::handle root, const char* what, F&& f) {
  if (py::isinstance<PyScalar>(root)) return f(root.cast<const PyScalar&>().get());
  if (py::isinstance<PyTensor>(root)) return f(root.cast<const PyTensor&>().get());
  throw py::type_error(std::string(what) + ": expected a Scalar or a Tensor");
}

}  // namespace

void bind_inspect(py::module_& m) {
  py::class_<GradcheckReport>(m, "GradcheckReport")
      .def_readonly("name", &GradcheckReport::name)
      .def_readonly("max_abs_error", &GradcheckReport::max_abs_error)
      .def_readonly("max_rel_error", &GradcheckReport::max_rel_error)
      .def_readonly("worst_index", &GradcheckReport::worst_index)
      .def_readonly("analytic", &GradcheckReport::analytic)
      .def_readonly("numeric", &GradcheckReport::numeric)
      .def_readonly("passed", &GradcheckReport::pass);
  py::class_<GradcheckResult>(m, "GradcheckResult")
      .def_readonly("passed", &GradcheckResult::pass)
      .def_readonly("inputs", &GradcheckResult::inputs)
      .def("__bool__", [](const GradcheckResult& r) { return r.pass; })
      .def("__str__", &GradcheckResult::str)
      .def("__repr__", &GradcheckResult::str);
  const auto check = [](bool order2) {
    return [order2](py::function f, py::object inputs, double eps, double atol, double rtol,
                    int directions, std::uint64_t seed) {
      return run_gradcheck(f, inputs, options(eps, atol, rtol, directions, seed), order2);
    };
  };
  m.def("gradcheck", check(false), py::arg("f"), py::arg("inputs"), py::arg("eps") = 1e-6,
        py::arg("atol") = 1e-5, py::arg("rtol") = 1e-3, py::arg("directions") = 8,
        py::arg("seed") = 42,
        R"(The gradient of f from one backward sweep against central differences, in float64.

``inputs`` is a list of numbers (f gets a list of Scalars and returns a Scalar) or of
arrays (f gets float64 Tensors and returns a Tensor; a non-scalar result is reduced to
sum(y * r) with a fixed random r). Returns a result that is truthy when it passes and
prints as a table.)");
  m.def("gradcheck_order2", check(true), py::arg("f"), py::arg("inputs"), py::arg("eps") = 1e-6,
        py::arg("atol") = 1e-5, py::arg("rtol") = 1e-3, py::arg("directions") = 8,
        py::arg("seed") = 42,
        "The second-order check: J v, H v and the adjoint identity along random directions.");

  py::class_<NodeCheck>(m, "NodeCheck")
      .def_property_readonly("node", [](const NodeCheck& c) { return c.id.str(); })
      .def_readonly("op", &NodeCheck::op)
      .def_readonly("scope", &NodeCheck::scope)
      .def_readonly("status", &NodeCheck::status)
      .def_readonly("max_abs_error", &NodeCheck::max_abs_error)
      .def_readonly("max_rel_error", &NodeCheck::max_rel_error)
      .def_readonly("detail", &NodeCheck::detail)
      .def_readonly("origin", &NodeCheck::origin);
  py::class_<NodeCheckResult>(m, "NodeCheckResult")
      .def_readonly("passed", &NodeCheckResult::pass)
      .def_readonly("nodes", &NodeCheckResult::nodes)
      .def_property_readonly("first_failure",
                             [](const NodeCheckResult& r) -> py::object {
                               const NodeCheck* c = r.first_failure();
                               return c ? py::cast(*c) : py::none();
                             })
      .def("__bool__", [](const NodeCheckResult& r) { return r.pass; })
      .def("__str__", &NodeCheckResult::str)
      .def("__repr__", &NodeCheckResult::str);
  m.def(
      "check_nodes",
      [](py::object root) {
        return on_root(root, "check_nodes", [](const auto& h) { return check_nodes(h); });
      },
      py::arg("root"),
      "Checks each node's backward rule against differences of its own forward; names the first "
      "that disagrees and the Python line that created it.");

  py::class_<Graph>(m, "Graph", "A DOT graph; a notebook shows it as SVG.")
      .def_readonly("dot", &Graph::dot)
      .def("_repr_svg_", [](const Graph& g) { return detail::render_svg(g.dot); })
      .def("svg", [](const Graph& g) { return detail::render_svg(g.dot); })
      .def(
          "save", [](const Graph& g, const std::string& path) { write_graph(g.dot, path); },
          py::arg("path"), "Writes .dot/.gv as text, .svg/.png/.pdf rendered by Graphviz.")
      .def("__str__", [](const Graph& g) { return g.dot; });
  m.def(
      "to_dot",
      [](py::object root, const std::string& title, bool collapse, int max_entries) {
        const DotOptions o = dot_options(title, collapse, max_entries);
        return on_root(root, "to_dot", [&](const auto& h) { return to_dot(h, o); });
      },
      py::arg("root"), py::arg("title") = "", py::arg("collapse_scopes") = false,
      py::arg("max_entries") = 6, "DOT text of the graph behind root: values, gradients, gates.");
  m.def(
      "draw",
      [](py::object root, const std::string& title, bool collapse, int max_entries) {
        const DotOptions o = dot_options(title, collapse, max_entries);
        return Graph{on_root(root, "draw", [&](const auto& h) { return to_dot(h, o); })};
      },
      py::arg("root"), py::arg("title") = "", py::arg("collapse_scopes") = false,
      py::arg("max_entries") = 6, "The graph behind root as an object a notebook draws.");
  m.def(
      "trace",
      [](py::object root) {
        return on_root(root, "trace", [](const auto& h) { return trace(h); });
      },
      py::arg("root"), "Both sweeps as flat code with the numbers, one line per edge.");

  py::class_<Page>(m, "Page",
                   "A self-contained HTML page (the sweep explorer, a training report); a notebook "
                   "shows it inline.")
      .def_readonly("html", &Page::html)
      .def("_repr_html_",
           [](const Page& e) {
             return "<iframe style=\"width:100%;height:640px;border:1px solid #ccc\" srcdoc=\"" +
                    escape_attr(e.html) + "\"></iframe>";
           })
      .def(
          "save",
          [](const Page& e, const std::string& path) {
            // Through a temporary file renamed into place, as write_html does:
            // an existing page is never left half written.
            const std::string tmp = path + ".tmp";
            {
              std::ofstream out(tmp, std::ios::binary);
              out << e.html;
              if (!out.flush()) throw Error(fmt::format("Page.save: cannot write {}", tmp));
            }
            std::error_code ec;
            std::filesystem::rename(tmp, path, ec);
            if (ec) {
              std::filesystem::remove(tmp, ec);
              throw Error(fmt::format("Page.save: cannot write {}", path));
            }
          },
          py::arg("path"));
  m.def(
      "explore",
      [](py::object root, const std::string& title) {
        HtmlOptions o;
        o.title = title;
        return Page{on_root(root, "explore", [&](const auto& h) { return to_html(h, o); })};
      },
      py::arg("root"), py::arg("title") = "",
      "A page that steps through the backward sweep behind root; shown inline in a notebook.");
  m.def(
      "write_html",
      [](py::object root, const std::string& path, const std::string& title) {
        HtmlOptions o;
        o.title = title;
        on_root(root, "write_html", [&](const auto& h) {
          write_html(h, path, o);
          return 0;
        });
      },
      py::arg("root"), py::arg("path"), py::arg("title") = "",
      "Writes the sweep explorer of root to a self-contained HTML file.");
}

}  // namespace tapegrad::python
