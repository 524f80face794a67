#include "train.hpp"

#include "json.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "tapegrad/dist.hpp"
#include "tapegrad/inspect.hpp"
#include "tapegrad/nn.hpp"
#include "tapegrad/report.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Data {
  nn::Dataset train, test;
};

Data load_data(const TrainOptions& o) {
  Data d;
  if (o.data == "fashion-mnist" || o.data.rfind("mnist:", 0) == 0) {
    const std::string dir = o.data == "fashion-mnist" ? nn::kFashionMnistDir : o.data.substr(6);
    d.train = nn::read_idx_folder(dir, true);
    d.test = nn::read_idx_folder(dir, false);
    d.train.name = d.test.name = o.data;
  } else if (o.data.rfind("csv:", 0) == 0) {
    auto all = nn::read_csv(o.data.substr(4), o.csv_label);
    std::tie(d.train, d.test) = nn::split(all, 0.2, o.seed);
    const auto nz = nn::Normalizer::fit(d.train);
    nz.apply(d.train);
    nz.apply(d.test);
  } else if (o.data == "xor" || o.data == "moons" || o.data == "spirals") {
    const auto make = [&](std::int64_t n, std::uint64_t seed) {
      return o.data == "xor"     ? nn::make_xor(n, seed)
             : o.data == "moons" ? nn::make_moons(n, seed)
                                 : nn::make_spirals(n, 3, seed);
    };
    d.train = make(2000, o.seed);
    d.test = make(500, o.seed + 1);
  } else {
    throw Error(
        fmt::format("unknown data set '{}': use fashion-mnist, mnist:DIR, csv:PATH, xor, moons "
                    "or spirals",
                    o.data));
  }
  if (o.limit > 0 && o.limit < d.train.n) {
    d.train.n = o.limit;
    d.train.x.resize(static_cast<std::size_t>(o.limit * d.train.features));
    d.train.y.resize(static_cast<std::size_t>(o.limit));
  }
  if (d.test.features != d.train.features)
    throw Error(fmt::format("train and test sets differ in features ({} vs {})", d.train.features,
                            d.test.features));
  d.train.classes = d.test.classes = std::max(d.train.classes, d.test.classes);
  return d;
}

// The loss of a batch: softmax cross-entropy on the logits, or half squared
// error between the softmax and the one-hot labels (averaged over rows).
Tensor batch_loss(const std::string& kind, const Tensor& logits, std::span<const std::int32_t> y,
                  std::vector<float>& onehot) {
  if (kind == "ce") return nn::cross_entropy(logits, y);
  const std::int64_t n = logits.shape()[0], c = logits.shape()[1];
  onehot.assign(static_cast<std::size_t>(n * c), 0.0f);
  for (std::int64_t r = 0; r < n; ++r)
    onehot[static_cast<std::size_t>(r * c + y[static_cast<std::size_t>(r)])] = 1;
  Tensor target = external({n, c}, DType::f32, onehot.data(), nullptr);
  return nn::half_squared_error(softmax(logits), target) / static_cast<double>(n);
}

std::string join(const std::vector<std::int64_t>& v) {
  return fmt::format("{}", fmt::join(v, ","));
}

// Writes a file atomically (temporary file + rename), so a reader never sees
// half of it and a crash keeps the previous version.
void write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(fmt::format("{}: cannot write", tmp.string()));
    f << text;
    if (!f.flush()) throw Error(fmt::format("{}: write failed", tmp.string()));
  }
  fs::rename(tmp, p);
}

std::string metrics_csv(const std::vector<nn::EpochMetrics>& rows) {
  std::string s = "epoch,train_loss,test_loss,test_accuracy,seconds,samples_per_second,lr\n";
  for (const nn::EpochMetrics& r : rows)
    s += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.3f},{:.1f},{:.6g}\n", r.epoch, r.train_loss,
                     r.test_loss, r.test_accuracy, r.seconds, r.samples_per_second, r.lr);
  return s;
}

// The rows of an earlier run's metrics.csv up to epoch `upto` (a resumed run
// keeps them).
std::vector<nn::EpochMetrics> read_metrics(const fs::path& p, std::int64_t upto) {
  std::vector<nn::EpochMetrics> rows;
  std::ifstream f(p);
  std::string line;
  std::getline(f, line);
  while (std::getline(f, line)) {
    nn::EpochMetrics r{};
    if (std::sscanf(line.c_str(), "%ld,%lf,%lf,%lf,%lf,%lf,%lf", &r.epoch, &r.train_loss,
                    &r.test_loss, &r.test_accuracy, &r.seconds, &r.samples_per_second,
                    &r.lr) == 7 &&
        r.epoch <= upto)
      rows.push_back(r);
  }
  return rows;
}

void plot(const fs::path& out, bool quiet) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    if (!quiet) fmt::print(stderr, "note: gnuplot is not installed; skipping curves.svg\n");
    return;
  }
  const std::string script = fmt::format(
      "set terminal svg size 900,420 dynamic font 'sans,11'\n"
      "set output '{0}/curves.svg'\n"
      "set datafile separator ','\n"
      "set multiplot layout 1,2 title 'tapegrad training'\n"
      "set xlabel 'epoch'\nset grid\nset key top right\n"
      "set title 'loss'\n"
      "plot '{0}/metrics.csv' using 1:2 skip 1 with linespoints title 'train', "
      "'' using 1:3 skip 1 with linespoints title 'test'\n"
      "set title 'test accuracy'\nset key bottom right\n"
      "plot '{0}/metrics.csv' using 1:4 skip 1 with linespoints title 'test accuracy'\n"
      "unset multiplot\n",
      out.string());
  write_file(out / "curves.gp", script);
  const std::string cmd = fmt::format("gnuplot '{}' 2>&1", (out / "curves.gp").string());
  if (std::system(cmd.c_str()) != 0 && !quiet)
    fmt::print(stderr, "warning: gnuplot failed; see curves.gp\n");
}

// A progress bar on the terminal (stderr), redrawn at most ten times a second.
class ProgressBar : public nn::Callback {
 public:
  explicit ProgressBar(bool on) : on_(on && isatty(2)) {}
  void on_epoch_begin(nn::Trainer&, std::int64_t) override { start_ = Clock::now(); }
  void on_step_end(nn::Trainer& t, const nn::StepInfo& s) override {
    if (!on_) return;
    const auto now = Clock::now();
    const std::int64_t done = s.step + 1;
    if (done < s.steps_in_epoch && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double frac = static_cast<double>(done) / static_cast<double>(s.steps_in_epoch);
    const int width = 28, filled = static_cast<int>(frac * width);
    fmt::print(stderr,
               "\repoch {}/{} [{}{}] {:3.0f}% {:8.0f} samples/s  loss {:.4f}  ETA {:4.1f}s ",
               s.epoch, t.options().epochs, std::string(static_cast<std::size_t>(filled), '='),
               std::string(static_cast<std::size_t>(width - filled), ' '), 100 * frac,
               static_cast<double>(s.samples_seen) / std::max(secs, 1e-9), s.epoch_loss,
               frac > 0 ? secs / frac - secs : 0.0);
  }
  void on_epoch_end(nn::Trainer&, const nn::EpochMetrics&) override {
    if (on_) fmt::print(stderr, "\r{:100}\r", "");
  }
  bool allows_fused_update(const nn::StepInfo&) const override { return true; }

 private:
  bool on_;
  Clock::time_point start_, last_{};
};

// After every epoch: a line on stdout and metrics.csv rewritten (atomically).
class EpochReport : public nn::Callback {
 public:
  EpochReport(fs::path metrics, bool quiet) : metrics_(std::move(metrics)), quiet_(quiet) {}
  void on_epoch_end(nn::Trainer& t, const nn::EpochMetrics& m) override {
    if (!quiet_)
      fmt::print(
          "epoch {:2}  train loss {:.4f}  test loss {:.4f}  test accuracy {:6.2f}%  {:.2f} s  "
          "{:.0f} samples/s\n",
          m.epoch, m.train_loss, m.test_loss, 100 * m.test_accuracy, m.seconds,
          m.samples_per_second);
    write_file(metrics_, metrics_csv(t.history()));
  }
  bool allows_fused_update(const nn::StepInfo&) const override { return true; }

 private:
  fs::path metrics_;
  bool quiet_;
};

}  // namespace

// --replicas, 0 meaning: one per thread in a single process whose batches
// give each replica at least kAutoReplicaRows rows, else 1.
std::int64_t train_replicas(const TrainOptions& o) {
  constexpr std::int64_t kAutoReplicaRows = 128;
  if (o.replicas < 0)
    throw Error(fmt::format("--replicas must not be negative, got {}", o.replicas));
  if (o.replicas > 0) return o.replicas;
  const int n = num_threads();
  return dist::size() == 1 && n > 1 && o.batch_size >= kAutoReplicaRows * n ? n : 1;
}

// --fused-update: on, off, or auto, which fuses where it measured faster:
// a batch of one row with two or more threads (at 32 and 64 rows it was
// slower, and with one thread no faster; docs/performance.md).
bool train_fused_update(const TrainOptions& o) {
  if (o.fused_update == "on") return true;
  if (o.fused_update == "off") return false;
  if (o.fused_update == "auto") return o.batch_size == 1 && num_threads() > 1;
  throw Error(fmt::format("unknown --fused-update '{}': use on, off or auto", o.fused_update));
}

int run_train(const TrainOptions& o) {
  // Under mpirun, rank 0 alone prints and writes; the cores of a machine are
  // shared among its ranks unless --threads says otherwise.
  const bool root = dist::is_root();
  const bool quiet = o.quiet || !root;
  int threads = o.threads;
  if (threads == 0 && dist::local_size() > 1)
    threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / dist::local_size());
  set_num_threads(threads);
  if (o.epochs <= 0) throw Error(fmt::format("--epochs must be positive, got {}", o.epochs));
  if (o.loss != "ce" && o.loss != "mse")
    throw Error(fmt::format("unknown --loss '{}': use ce or mse", o.loss));
  const nn::Schedule schedule = nn::parse_schedule(o.schedule);
  const bool fused = train_fused_update(o);
  if (o.checkpoint_layers && dist::size() > 1)
    throw Error(
        "--checkpoint-layers does not combine with mpirun yet: the gradient reducer sends each "
        "parameter's gradient as the sweep passes its leaf, and a recomputed layer's leaves are "
        "on a scratch tape it does not watch");
  const fs::path out(o.out);
  if (root) fs::create_directories(out);
  const Data d = load_data(o);
  std::vector<std::int64_t> sizes{d.train.features};
  sizes.insert(sizes.end(), o.hidden.begin(), o.hidden.end());
  sizes.push_back(d.train.classes);
  nn::MLP model(sizes, {.hidden = nn::parse_activation(o.activation),
                        .output = nn::Activation::identity,
                        .dtype = DType::f32,
                        .seed = o.seed,
                        .checkpoint_layers = o.checkpoint_layers});
  std::unique_ptr<nn::Optimizer> opt;
  if (o.optimizer == "adam")
    opt = std::make_unique<nn::Adam>(model.parameters(),
                                     nn::AdamOptions{.lr = o.lr, .weight_decay = o.weight_decay});
  else if (o.optimizer == "sgd")
    opt = std::make_unique<nn::SGD>(
        model.parameters(),
        nn::SGDOptions{.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay});
  else
    throw Error(fmt::format("unknown --optimizer '{}': use adam or sgd", o.optimizer));

  const fs::path ckpt = out / "checkpoint.tgc";
  const std::int64_t replicas = train_replicas(o);
  nn::Trainer trainer(model, *opt,
                      {.epochs = o.epochs,
                       .batch_size = o.batch_size,
                       .seed = o.seed,
                       .schedule = schedule,
                       .replicas = replicas,
                       .fused_update = fused,
                       .checkpoint = ckpt.string(),
                       .checkpoint_meta = {{"sizes", join(sizes)}, {"data", o.data}}});
  // The targets of the mse loss outlive each step's tape; one buffer per
  // replica, since replicas compute their losses at the same time.
  std::vector<std::vector<float>> onehot(static_cast<std::size_t>(replicas));
  trainer.set_loss([&](const Tensor& logits, std::span<const std::int32_t> y) {
    return batch_loss(o.loss, logits, y, onehot[static_cast<std::size_t>(nn::current_replica())]);
  });
  // Rank 0 reads the checkpoint; DataParallel hands its state to the others.
  dist::DataParallel data_parallel(trainer, {.check_every = o.check_every});
  if (o.resume && root) {
    if (!fs::exists(ckpt))
      throw Error(
          fmt::format("--resume: {} does not exist; run without --resume first", ckpt.string()));
    const std::int64_t done = trainer.resume();
    trainer.set_history(read_metrics(out / "metrics.csv", done));
    if (!quiet) fmt::print("resuming after epoch {} from {}\n", done, ckpt.string());
  }
  const std::string procs =
      dist::size() > 1 ? fmt::format("{} processes x {} threads", dist::size(), num_threads())
      : replicas > 1   ? fmt::format("{} threads ({} replicas)", num_threads(), replicas)
                       : fmt::format("{} threads", num_threads());
  if (!quiet)
    fmt::print(
        "tapegrad train: {} ({} train / {} test samples), MLP {}, {} + {}, lr {} ({}), batch {}, "
        "{} epochs, {}, {} float32 matmul\n",
        o.data, d.train.n, d.test.n, join(sizes), o.activation, o.optimizer, o.lr, o.schedule,
        o.batch_size, o.epochs, procs, float_gemm_backend());
  ProgressBar bar(!quiet);
  EpochReport report(out / "metrics.csv", quiet);
  report::TrainingMonitor monitor;
  if (root) {
    trainer.add_callback(bar);
    trainer.add_callback(report);
    if (o.report) trainer.add_callback(monitor);
  }
  const std::vector<nn::EpochMetrics>& rows = trainer.fit(d.train, &d.test);
  if (!root) return 0;
  const dist::GradientReducer& reducer = data_parallel.reducer();
  const double allreduce_ms =
      reducer.steps() ? 1e3 * reducer.wait_seconds() / static_cast<double>(reducer.steps()) : 0.0;
  if (rows.empty()) throw Error("no epochs were run (the checkpoint is already past --epochs)");
  const nn::EpochMetrics& last = rows.back();
  double sps = 0, train_seconds = 0;
  for (const nn::EpochMetrics& r : rows) sps += r.samples_per_second, train_seconds += r.seconds;
  sps /= static_cast<double>(rows.size());
  const std::string json = fmt::format(
      "{{\n  \"final_test_accuracy\": {:.6f},\n  \"final_test_loss\": {:.6f},\n  "
      "\"final_train_loss\": {:.6f},\n"
      "  \"epochs\": {},\n  \"samples_per_second\": {:.1f},\n  \"seconds_per_epoch\": {:.4f},\n"
      "  \"train_seconds\": {:.3f},\n  \"parameters\": {},\n  \"matmul_backend\": \"{}\",\n  "
      "\"world_size\": {},\n  \"allreduce_wait_ms_per_step\": {:.4f},\n  \"tape_peak_bytes\": {},\n"
      "  \"recompute_peak_bytes\": {},\n"
      "  \"options\": {{\n"
      "    \"data\": {}, \"layers\": [{}], \"activation\": {}, \"loss\": \"{}\",\n"
      "    \"optimizer\": \"{}\", \"lr\": {}, \"momentum\": {}, \"weight_decay\": {}, "
      "\"schedule\": \"{}\",\n"
      "    \"batch_size\": {}, \"epochs\": {}, \"seed\": {}, \"threads\": {}, \"replicas\": {}, "
      "\"fused_update\": {}, \"checkpoint_layers\": {}, \"resumed\": {}\n  "
      "}}\n}}\n",
      last.test_accuracy, last.test_loss, last.train_loss, last.epoch, sps,
      train_seconds / static_cast<double>(rows.size()), train_seconds, model.parameter_count(),
      float_gemm_backend(), dist::size(), allreduce_ms, trainer.tape().memory().peak_bytes,
      checkpoint_scratch_peak(), json_str(o.data), join(sizes), json_str(o.activation), o.loss,
      o.optimizer, o.lr, o.momentum, o.weight_decay, o.schedule, o.batch_size, o.epochs, o.seed,
      num_threads(), replicas, fused ? "true" : "false", o.checkpoint_layers ? "true" : "false",
      o.resume ? "true" : "false");
  write_file(out / "summary.json", json);
  const std::string summary = fmt::format(
      "tapegrad training summary\n"
      "  data            {} ({} train, {} test samples)\n"
      "  model           MLP {} ({} parameters), {} hidden, softmax output\n"
      "  recipe          {} lr {} ({} schedule), batch {}, {} epochs, seed {}\n"
      "  test accuracy   {:.2f}%\n"
      "  test loss       {:.4f}\n"
      "  training time   {:.1f} s ({:.2f} s per epoch, {:.0f} samples/s, {}, {} matmul)\n"
      "  outputs         {}/: metrics.csv summary.json report.html curves.svg graph.svg "
      "checkpoint.tgc summary.txt\n",
      o.data, d.train.n, d.test.n, join(sizes), model.parameter_count(), o.activation, o.optimizer,
      o.lr, o.schedule, o.batch_size, last.epoch, o.seed, 100 * last.test_accuracy, last.test_loss,
      train_seconds, train_seconds / static_cast<double>(rows.size()), sps, procs,
      float_gemm_backend(), out.string());
  write_file(out / "summary.txt", summary);
  if (o.plot) plot(out, quiet);
  if (o.graph || o.report) {
    // One training step on a batch of 8, clustered by layer: drawn as
    // graph.svg and swept in the report's explorer.
    Tape& tape = trainer.tape();
    TapeScope scope(tape);
    nn::Batches b(d.test, 8, 0, false);
    std::vector<float> xb;
    std::vector<std::int32_t> yb;
    b.next(xb, yb);
    tape.clear();
    Tensor logits = model(external({static_cast<std::int64_t>(yb.size()), d.train.features},
                                   DType::f32, xb.data(), nullptr)
                              .named("batch"));
    Tensor loss = batch_loss(o.loss, logits, yb, onehot[0]).named("loss");
    model.zero_grad();
    loss.backward();
    const std::string title =
        fmt::format("one training step of MLP {} (batch of {})", join(sizes), yb.size());
    try {
      if (o.graph) write_graph(to_dot(loss, {.title = title}), (out / "graph.svg").string());
    } catch (const Error& e) {
      fmt::print(stderr, "warning: {}\n", e.what());
    }
    if (o.report)
      report::write_training_report(
          (out / "report.html").string(), rows, monitor,
          {.title = "tapegrad training report: " + o.data,
           .facts = {{"data",
                      fmt::format("{} ({} train, {} test samples)", o.data, d.train.n, d.test.n)},
                     {"model", fmt::format("MLP {} ({} parameters), {} hidden", join(sizes),
                                           model.parameter_count(), o.activation)},
                     {"recipe", fmt::format("{} lr {} ({}), batch {}, seed {}", o.optimizer, o.lr,
                                            o.schedule, o.batch_size, o.seed)},
                     {"explorer", title}}},
          &loss);
    model.zero_grad();
    tape.clear();
  }
  fmt::print("\n{}", summary);
  return 0;
}

}  // namespace tapegrad::cli
