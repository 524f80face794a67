// tapegrad.nn from Python: parameters as NumPy views, the MLP, losses,
// optimisers, data sets from NumPy arrays, and the trainer with Python
// callbacks. A training epoch runs in C++ without the GIL.
#include <cmath>
#include <limits>

#include "python/bind.hpp"
#include "tapegrad/nn.hpp"
#include "tapegrad/report.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::python {

namespace {

using nn::Parameter;

// A parameter's memory as NumPy sees it, in the declared shape: a
// transposed storage (WeightLayout::in_out) becomes strides, not a copy.
py::array parameter_view(Parameter& p, bool grad, py::handle owner) {
  void* data = grad ? p.raw_grad() : p.raw_value();
  const py::dtype dt = p.dtype() == DType::f32 ? py::dtype::of<float>() : py::dtype::of<double>();
  const py::ssize_t es = static_cast<py::ssize_t>(dtype_size(p.dtype()));
  std::vector<py::ssize_t> dims(p.shape().dims().begin(), p.shape().dims().end());
  std::vector<py::ssize_t> strides(dims.size());
  py::ssize_t step = es;
  for (std::size_t i = dims.size(); i-- > 0;) {
    strides[i] = step;
    step *= dims[i];
  }
  if (p.stored_transposed() && dims.size() == 2) strides = {es, dims[0] * es};
  return py::array(dt, dims, strides, data, owner);
}

nn::Activation activation(const std::string& s) { return nn::parse_activation(s); }

// A data set from NumPy arrays (copied once: the trainer gathers shuffled
// batches out of it), or a Dataset as it is.
nn::Dataset dataset(py::handle x, py::handle y, const std::string& name) {
  py::array xa = py::array::ensure(x);
  if (!xa || xa.ndim() < 1)
    throw py::type_error("Dataset: x must be an array of samples, one row (or image) per sample");
  const char kind = xa.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error("Dataset: x must hold real numbers, not dtype " +
                         std::string(py::str(xa.dtype())));
  auto xf = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(xa);
  py::array ya = py::array::ensure(y);
  if (!ya || ya.ndim() != 1)
    throw py::type_error("Dataset: y must be a 1-D array of integer labels");
  if (ya.dtype().kind() != 'i' && ya.dtype().kind() != 'u')
    throw py::type_error("Dataset: labels must be integers, not dtype " +
                         std::string(py::str(ya.dtype())));
  auto yi = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(ya);
  nn::Dataset d;
  d.n = xa.shape(0);
  if (yi.size() != d.n)
    throw py::value_error(
        fmt::format("Dataset: {} samples in x but {} labels in y", d.n, yi.size()));
  d.features = d.n ? xf.size() / d.n : 0;
  d.x.assign(xf.data(), xf.data() + xf.size());
  d.y.assign(yi.data(), yi.data() + yi.size());
  for (std::size_t i = 0; i < d.y.size(); ++i) {
    if (d.y[i] < 0)
      throw py::value_error(fmt::format("Dataset: label {} of sample {} is negative", d.y[i], i));
    d.classes = std::max(d.classes, d.y[i] + 1);
  }
  for (std::size_t i = 0; i < d.x.size(); ++i)
    if (!std::isfinite(d.x[i]))
      throw py::value_error(fmt::format("Dataset: feature {} of sample {} is {}",
                                        i % static_cast<std::size_t>(d.features),
                                        i / static_cast<std::size_t>(d.features), d.x[i]));
  d.name = name;
  return d;
}

nn::Dataset as_dataset(py::handle data, const char* what) {
  if (py::isinstance<nn::Dataset>(data)) return data.cast<const nn::Dataset&>();
  if (py::isinstance<py::tuple>(data) && py::len(data) == 2) {
    py::tuple t = data.cast<py::tuple>();
    return dataset(t[0], t[1], "");
  }
  throw py::type_error(std::string(what) + ": expected a Dataset or a tuple (x, y) of arrays");
}

py::dict metrics_dict(const nn::EpochMetrics& m) {
  py::dict d;
  d["epoch"] = m.epoch;
  d["train_loss"] = m.train_loss;
  d["test_loss"] = m.test_loss;
  d["test_accuracy"] = m.test_accuracy;
  d["seconds"] = m.seconds;
  d["samples_per_second"] = m.samples_per_second;
  d["lr"] = m.lr;
  return d;
}

// The Python object behind a callback list entry: its hooks are looked up
// once, and a step with no Python hook to call never takes the GIL.
class PyCallback : public nn::Callback {
 public:
  PyCallback(py::object obj, py::object trainer)
      : obj_(std::move(obj)), trainer_(std::move(trainer)) {
    for (const char* h : {"on_fit_begin", "on_epoch_begin", "on_step_begin", "on_after_backward",
                          "on_step_end", "on_epoch_end", "on_fit_end"})
      has_.push_back(py::hasattr(obj_, h));
  }
  ~PyCallback() override {
    py::gil_scoped_acquire gil;
    obj_ = py::object();
    trainer_ = py::object();
  }
  void on_fit_begin(nn::Trainer&) override { call(0, "on_fit_begin"); }
  void on_epoch_begin(nn::Trainer&, std::int64_t e) override { call(1, "on_epoch_begin", e); }
  void on_step_begin(nn::Trainer&, const nn::StepInfo& s) override { call(2, "on_step_begin", s); }
  void on_after_backward(nn::Trainer&, const nn::StepInfo& s) override {
    call(3, "on_after_backward", s);
  }
  bool allows_fused_update(const nn::StepInfo&) const override { return !has_[3]; }
  void on_step_end(nn::Trainer&, const nn::StepInfo& s) override { call(4, "on_step_end", s); }
  void on_epoch_end(nn::Trainer&, const nn::EpochMetrics& m) override {
    if (!has_[5]) return;
    py::gil_scoped_acquire gil;
    obj_.attr("on_epoch_end")(trainer_, metrics_dict(m));
  }
  void on_fit_end(nn::Trainer&) override { call(6, "on_fit_end"); }

 private:
  template <class... A>
  void call(std::size_t k, const char* name, const A&... a) {
    if (!has_[k]) return;
    py::gil_scoped_acquire gil;
    obj_.attr(name)(trainer_, a...);
  }
  py::object obj_, trainer_;
  std::vector<bool> has_;
};

// The trainer and what it refers to, kept alive together.
struct PyTrainer {
  py::object model, optimizer;
  std::unique_ptr<nn::Trainer> trainer;
};

}  // namespace

void bind_nn(py::module_& nn) {
  py::class_<Parameter>(nn, "Parameter",
                        "A model's parameter: its values and gradient live in the model.")
      .def_property_readonly("name", &Parameter::name)
      .def_property_readonly("shape",
                             [](const Parameter& p) {
                               py::tuple t(p.shape().rank());
                               for (int i = 0; i < p.shape().rank(); ++i) t[i] = p.shape()[i];
                               return t;
                             })
      .def_property_readonly("dtype",
                             [](const Parameter& p) {
                               return p.dtype() == DType::f32 ? py::dtype::of<float>()
                                                              : py::dtype::of<double>();
                             })
      .def_property_readonly(
          "value",
          [](py::object self) { return parameter_view(self.cast<Parameter&>(), false, self); },
          "The values as a writeable NumPy view of the parameter's memory (no copy).")
      .def_property_readonly(
          "grad",
          [](py::object self) { return parameter_view(self.cast<Parameter&>(), true, self); },
          "The gradient as a NumPy view (no copy); zeros until a backward reaches it.")
      .def("zero_grad", &Parameter::zero_grad)
      .def(
          "var",
          [](py::object self, py::object tape) {
            Parameter& p = self.cast<Parameter&>();
            BoxPtr box = tape_or_current(tape);
            PyTensor t(p.var(box->tape(), python_site()), box);
            box->keep(t.h.index(), self);
            return t;
          },
          py::arg("tape") = py::none(), "A leaf on a tape aliasing the parameter's memory.")
      .def("__repr__", [](const Parameter& p) {
        return fmt::format("Parameter('{}', shape={}, dtype={})", p.name(), p.shape().str(),
                           p.dtype() == DType::f32 ? "float32" : "float64");
      });

  py::class_<nn::Module>(nn, "Module")
      .def(
          "__call__",
          [](py::object self, const PyTensor& x) {
            nn::Module& m = self.cast<nn::Module&>();
            PyTensor y(m(x.get(), python_site()), x.box);
            // The output's nodes read the parameters' memory: the model lives
            // as long as the tape keeps them.
            x.box->keep(y.h.index(), self);
            return y;
          },
          py::arg("x"))
      .def("parameters", &nn::Module::parameters, py::return_value_policy::reference_internal)
      .def("named_parameters", &nn::Module::named_parameters,
           py::return_value_policy::reference_internal)
      .def("zero_grad", &nn::Module::zero_grad)
      .def_property_readonly("parameter_count", &nn::Module::parameter_count)
      .def(
          "save",
          [](nn::Module& m, const std::string& path) { nn::save_checkpoint(path, m, nullptr); },
          py::arg("path"), "Writes the parameters to a checkpoint file (atomically).")
      .def(
          "load",
          [](nn::Module& m, const std::string& path) { nn::load_checkpoint(path, m, nullptr); },
          py::arg("path"), "Reads parameters from a checkpoint; on any error nothing changes.");

  py::class_<nn::MLP, nn::Module>(nn, "MLP", R"(Fully connected layers of the given sizes.

``nn.MLP([784, 256, 10])`` is two Linear layers with ReLU between them and logits out.)")
      .def(py::init([](std::vector<std::int64_t> sizes, const std::string& hidden,
                       const std::string& output, py::object dtype, std::uint64_t seed, bool bias,
                       bool checkpoint_layers) {
             nn::MLPOptions o;
             o.hidden = activation(hidden);
             o.output = activation(output);
             o.dtype = dtype.is_none() ? DType::f32 : parse_dtype(dtype);
             o.seed = seed;
             o.bias = bias;
             o.checkpoint_layers = checkpoint_layers;
             return std::make_unique<nn::MLP>(std::move(sizes), o);
           }),
           py::arg("sizes"), py::arg("hidden") = "relu", py::arg("output") = "identity",
           py::arg("dtype") = py::none(), py::arg("seed") = 0, py::arg("bias") = true,
           py::arg("checkpoint_layers") = false)
      .def_property_readonly("sizes", &nn::MLP::sizes)
      .def("__repr__", [](nn::MLP& m) {
        return fmt::format("MLP({}, hidden={}, dtype={}, {} parameters)", fmt::join(m.sizes(), "-"),
                           nn::activation_name(m.options().hidden),
                           m.options().dtype == DType::f32 ? "float32" : "float64",
                           m.parameter_count());
      });
  py::class_<nn::Linear, nn::Module>(nn, "Linear", "y = x W^T + b with W (out, in).")
      .def(py::init([](std::int64_t in, std::int64_t out, py::object dtype, std::uint64_t seed,
                       bool bias) {
             return std::make_unique<nn::Linear>("linear", in, out,
                                                 dtype.is_none() ? DType::f32 : parse_dtype(dtype),
                                                 seed, nn::Init::kaiming_uniform, bias);
           }),
           py::arg("in_features"), py::arg("out_features"), py::arg("dtype") = py::none(),
           py::arg("seed") = 0, py::arg("bias") = true);

  // ---- losses ----
  nn.def(
      "cross_entropy",
      [](const PyTensor& logits, py::object labels) {
        auto l =
            py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(labels);
        if (!l) throw py::type_error("cross_entropy: labels must be an array of integers");
        return PyTensor(nn::cross_entropy(logits.get(),
                                          std::span<const std::int32_t>(
                                              l.data(), static_cast<std::size_t>(l.size())),
                                          python_site()),
                        logits.box);
      },
      py::arg("logits"), py::arg("labels"),
      "Softmax cross-entropy on logits (N, C), mean over rows.");
  // Losses of an output and a target (a Tensor, or an array made a constant
  // of the output's dtype on its tape).
  using Loss = Tensor (*)(const Tensor&, const Tensor&, Site);
  const auto loss = [&nn](const char* name, Loss fn, const char* a, const char* b,
                          const char* doc) {
    nn.def(
        name,
        [fn](const PyTensor& out, py::object r) {
          const PyTensor t =
              py::isinstance<PyTensor>(r)
                  ? r.cast<PyTensor>()
                  : tensor_from_array(r, false, py::str(std::string(dtype_name(out.get().dtype()))),
                                      out.box);
          return PyTensor(fn(out.get(), t.get(), python_site()), out.box);
        },
        py::arg(a), py::arg(b), doc);
  };
  loss("mse", &nn::mse, "output", "target", "Mean of (output - target)^2.");
  loss("half_squared_error", &nn::half_squared_error, "output", "target",
       "1/2 ||output - target||^2 over all elements.");
  loss("binary_cross_entropy", &nn::binary_cross_entropy, "logits", "targets",
       "Binary cross-entropy on logits (stable for any logit).");

  // ---- optimisers ----
  py::class_<nn::Optimizer>(nn, "Optimizer")
      .def("step", &nn::Optimizer::step, "Updates every parameter from its gradient.")
      .def("zero_grad", &nn::Optimizer::zero_grad)
      .def_property("lr", &nn::Optimizer::lr, &nn::Optimizer::set_lr)
      .def_property_readonly("steps", &nn::Optimizer::steps);
  py::class_<nn::SGD, nn::Optimizer>(nn, "SGD").def(
      py::init([](std::vector<Parameter*> params, double lr, double momentum, double weight_decay,
                  bool nesterov) {
        return std::make_unique<nn::SGD>(std::move(params),
                                         nn::SGDOptions{lr, momentum, weight_decay, nesterov});
      }),
      py::arg("params"), py::arg("lr") = 0.01, py::arg("momentum") = 0.0,
      py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, py::keep_alive<1, 2>());
  py::class_<nn::Adam, nn::Optimizer>(nn, "Adam")
      .def(py::init([](std::vector<Parameter*> params, double lr, std::pair<double, double> betas,
                       double eps, double weight_decay) {
             return std::make_unique<nn::Adam>(
                 std::move(params),
                 nn::AdamOptions{lr, betas.first, betas.second, eps, weight_decay});
           }),
           py::arg("params"), py::arg("lr") = 1e-3, py::arg("betas") = std::make_pair(0.9, 0.999),
           py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::keep_alive<1, 2>());

  // ---- data ----
  py::class_<nn::Dataset>(nn, "Dataset", R"(Samples (float32 rows) and integer labels.

``nn.Dataset(x, y)`` copies the arrays once; ``.x`` and ``.y`` are views of the copy.)")
      .def(py::init([](py::object x, py::object y, const std::string& name) {
             return dataset(x, y, name);
           }),
           py::arg("x"), py::arg("y"), py::arg("name") = "")
      .def_property_readonly("x",
                             [](py::object self) {
                               nn::Dataset& d = self.cast<nn::Dataset&>();
                               return py::array_t<float>({d.n, d.features}, d.x.data(), self);
                             })
      .def_property_readonly("y",
                             [](py::object self) {
                               nn::Dataset& d = self.cast<nn::Dataset&>();
                               return py::array_t<std::int32_t>({d.n}, d.y.data(), self);
                             })
      .def_readonly("n", &nn::Dataset::n)
      .def_readonly("features", &nn::Dataset::features)
      .def_readonly("classes", &nn::Dataset::classes)
      .def_readonly("name", &nn::Dataset::name)
      .def("__len__", [](const nn::Dataset& d) { return d.n; })
      .def("__repr__", [](const nn::Dataset& d) {
        return fmt::format("Dataset('{}', {} samples, {} features, {} classes)", d.name, d.n,
                           d.features, d.classes);
      });
  nn.def(
      "fashion_mnist",
      [](bool train, const std::string& folder) {
        nn::Dataset d = nn::read_idx_folder(folder, train);
        d.name = train ? "fashion-mnist train" : "fashion-mnist test";
        return d;
      },
      py::arg("train") = true, py::arg("folder") = nn::kFashionMnistDir,
      "Fashion-MNIST (or MNIST in `folder`) from its IDX files: pixels scaled to [0, 1].");
  nn.def("read_csv", &nn::read_csv, py::arg("path"), py::arg("label_column"));
  nn.def("make_moons", &nn::make_moons, py::arg("n"), py::arg("seed"), py::arg("noise") = 0.1);
  nn.def("make_xor", &nn::make_xor, py::arg("n"), py::arg("seed"), py::arg("noise") = 0.1);
  nn.def("make_spirals", &nn::make_spirals, py::arg("n"), py::arg("classes"), py::arg("seed"),
         py::arg("noise") = 0.2);

  // ---- the trainer ----
  py::class_<nn::StepInfo>(nn, "StepInfo", "Where a step is, for callbacks.")
      .def_readonly("epoch", &nn::StepInfo::epoch)
      .def_readonly("step", &nn::StepInfo::step)
      .def_readonly("steps_in_epoch", &nn::StepInfo::steps_in_epoch)
      .def_readonly("global_step", &nn::StepInfo::global_step)
      .def_readonly("rows", &nn::StepInfo::rows)
      .def_readonly("samples_seen", &nn::StepInfo::samples_seen)
      .def_readonly("lr", &nn::StepInfo::lr)
      .def_readonly("loss", &nn::StepInfo::loss)
      .def_readonly("epoch_loss", &nn::StepInfo::epoch_loss);

  py::class_<report::TrainingMonitor>(nn, "TrainingMonitor",
                                      R"(A callback that measures training for the report.

At a few steps of every epoch it takes each parameter's gradient norm and
update-to-weight ratio, and histograms at each epoch's end; pass it in
``callbacks`` and then ``nn.training_report(trainer, monitor)``.)")
      .def(py::init([](int samples_per_epoch, int bins) {
             return std::make_unique<report::TrainingMonitor>(
                 report::MonitorOptions{.samples_per_epoch = samples_per_epoch, .bins = bins});
           }),
           py::arg("samples_per_epoch") = 8, py::arg("bins") = 30)
      .def_property_readonly("names", &report::TrainingMonitor::names)
      .def_property_readonly("measured_steps",
                             [](const report::TrainingMonitor& m) { return m.steps().size(); })
      .def(
          "grad_norms",
          [](const report::TrainingMonitor& m) {
            py::list out;
            for (const report::StepStats& s : m.steps()) out.append(py::cast(s.grad_norm));
            return out;
          },
          "Per measured step, each parameter's gradient norm.");

  py::class_<PyTrainer>(nn, "Trainer",
                        R"(Epochs of shuffled mini-batches, evaluation and checkpoints.

``fit`` runs in C++ without holding the GIL; Python callbacks (objects with any of
on_fit_begin, on_epoch_begin, on_step_begin, on_after_backward, on_step_end,
on_epoch_end, on_fit_end) are called at the same hooks as in C++.)")
      .def(py::init([](py::object model, py::object optimizer, std::int64_t epochs,
                       std::int64_t batch_size, std::uint64_t seed, const std::string& schedule,
                       std::int64_t replicas, const std::string& checkpoint) {
             nn::TrainerOptions o;
             o.epochs = epochs;
             o.batch_size = batch_size;
             o.seed = seed;
             o.schedule = nn::parse_schedule(schedule);
             o.replicas = replicas;
             o.checkpoint = checkpoint;
             auto t = std::make_unique<PyTrainer>();
             t->model = model;
             t->optimizer = optimizer;
             t->trainer = std::make_unique<nn::Trainer>(model.cast<nn::Module&>(),
                                                        optimizer.cast<nn::Optimizer&>(), o);
             return t;
           }),
           py::arg("model"), py::arg("optimizer"), py::arg("epochs") = 10,
           py::arg("batch_size") = 64, py::arg("seed") = 1, py::arg("schedule") = "constant",
           py::arg("replicas") = 1, py::arg("checkpoint") = "")
      .def(
          "_fit",
          [](py::object self, py::object train, py::object test, py::list callbacks) {
            PyTrainer& t = self.cast<PyTrainer&>();
            const nn::Dataset tr = as_dataset(train, "Trainer.fit: train");
            std::optional<nn::Dataset> te;
            if (!test.is_none()) te = as_dataset(test, "Trainer.fit: test");
            std::vector<std::unique_ptr<PyCallback>> cbs;
            for (py::handle c : callbacks)
              if (!py::isinstance<report::TrainingMonitor>(c))
                cbs.push_back(
                    std::make_unique<PyCallback>(py::reinterpret_borrow<py::object>(c), self));
            struct Detach {  // the trainer keeps no callback past fit()
              nn::Trainer& t;
              ~Detach() { t.clear_callbacks(); }
            } detach{*t.trainer};
            // In the order given: the C++ monitor as itself, Python objects
            // through their adapters.
            auto next = cbs.begin();
            for (py::handle c : callbacks) {
              if (py::isinstance<report::TrainingMonitor>(c))
                t.trainer->add_callback(c.cast<report::TrainingMonitor&>());
              else
                t.trainer->add_callback(**next++);
            }
            std::vector<nn::EpochMetrics> rows;
            {
              py::gil_scoped_release nogil;
              // OpenMP's and OpenBLAS's pools told this thread's setting
              // explicitly, as `tapegrad train` does: left to their
              // defaults inside the interpreter (where NumPy has started
              // OpenBLAS already), an epoch measured 15 % slower.
              set_num_threads(num_threads());
              rows = t.trainer->fit(tr, te ? &*te : nullptr);
            }
            py::list out;
            for (const nn::EpochMetrics& m : rows) out.append(metrics_dict(m));
            return out;
          },
          py::arg("train"), py::arg("test") = py::none(), py::arg("callbacks") = py::list(),
          "Trains from a Dataset or (x, y) arrays; returns every epoch's metrics as dicts.")
      .def(
          "evaluate",
          [](PyTrainer& t, py::object data) {
            const nn::Dataset d = as_dataset(data, "Trainer.evaluate");
            nn::EvalMetrics e;
            {
              py::gil_scoped_release nogil;
              e = t.trainer->evaluate(d);
            }
            py::dict out;
            out["loss"] = e.loss;
            out["accuracy"] = e.accuracy;
            return out;
          },
          py::arg("data"))
      .def(
          "resume", [](PyTrainer& t, const std::string& path) { return t.trainer->resume(path); },
          py::arg("path") = "")
      .def_property_readonly("epochs", [](PyTrainer& t) { return t.trainer->options().epochs; })
      .def_property_readonly("batch_size",
                             [](PyTrainer& t) { return t.trainer->options().batch_size; })
      .def(
          "report",
          [](PyTrainer& t, const report::TrainingMonitor& m, const std::string& title) {
            report::ReportOptions o;
            if (!title.empty()) o.title = title;
            return Page{report::training_report(t.trainer->history(), m, o)};
          },
          py::arg("monitor"), py::arg("title") = "",
          "The training report (curves, gradient statistics with flags, histograms) as a Page: "
          "shown inline in a notebook, .save(path) writes it.")
      .def_property_readonly("epochs_done", [](PyTrainer& t) { return t.trainer->epochs_done(); })
      .def_property_readonly("model", [](PyTrainer& t) { return t.model; })
      .def_property_readonly("optimizer", [](PyTrainer& t) { return t.optimizer; })
      .def_property_readonly("history", [](PyTrainer& t) {
        py::list out;
        for (const nn::EpochMetrics& m : t.trainer->history()) out.append(metrics_dict(m));
        return out;
      });
}

}  // namespace tapegrad::python
