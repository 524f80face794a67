#include "tapegrad/nn/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>

#include <omp.h>

#include <exception>
#include <memory>

#include "slices.hpp"
#include "tapegrad/nn/loss.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::nn {

Schedule parse_schedule(const std::string& name) {
  if (name == "constant") return Schedule::constant;
  if (name == "cosine") return Schedule::cosine;
  throw Error(fmt::format("unknown schedule '{}': use cosine or constant", name));
}
const char* schedule_name(Schedule s) { return s == Schedule::cosine ? "cosine" : "constant"; }

Trainer::Trainer(Module& model, Optimizer& opt, TrainerOptions options)
    : model_(model), optim_(opt), opt_(std::move(options)), peak_lr_(opt.lr()) {
  if (opt_.epochs <= 0)
    throw Error(fmt::format("trainer: epochs must be positive, got {}", opt_.epochs));
  if (opt_.batch_size <= 0)
    throw Error(fmt::format("trainer: batch size must be positive, got {}", opt_.batch_size));
  if (opt_.replicas < 1 || opt_.replicas > kMaxReplicas)
    throw Error(
        fmt::format("trainer: replicas must lie in [1, {}], got {}", kMaxReplicas, opt_.replicas));
  if (opt_.eval_batch_size <= 0)
    throw Error(fmt::format("trainer: evaluation batch size must be positive, got {}",
                            opt_.eval_batch_size));
}

double Trainer::lr_at(std::int64_t global_step, std::int64_t total_steps) const {
  if (opt_.schedule == Schedule::constant || total_steps <= 0) return peak_lr_;
  return peak_lr_ * 0.5 *
         (1 + std::cos(std::numbers::pi * static_cast<double>(global_step) /
                       static_cast<double>(total_steps)));
}

std::int64_t Trainer::resume(const std::string& checkpoint) {
  const std::string& path = checkpoint.empty() ? opt_.checkpoint : checkpoint;
  if (path.empty()) throw Error("resume: no checkpoint file given");
  const CheckpointMeta meta = load_checkpoint(path, model_, &optim_);
  const auto it = meta.find("epoch");
  done_ = 0;
  if (it != meta.end()) {
    try {
      done_ = std::stoll(it->second);
    } catch (const std::exception&) {
      throw Error(fmt::format("resume: {}: the epoch in its metadata is not a number ('{}')", path,
                              it->second));
    }
  }
  std::erase_if(history_, [&](const EpochMetrics& m) { return m.epoch > done_; });
  return done_;
}

Tensor Trainer::batch_loss(const Tensor& output, std::span<const std::int32_t> labels) {
  Tensor loss = loss_ ? loss_(output, labels) : cross_entropy(output, labels);
  if (loss.numel() != 1)
    throw Error(
        fmt::format("trainer: the loss function returned shape {}; it must return one "
                    "element (a mean over the batch)",
                    loss.shape().str()));
  return loss;
}

namespace {
void check_data(const Dataset& d, const char* which) {
  if (d.n <= 0) throw Error(fmt::format("trainer: the {} set '{}' has no samples", which, d.name));
  if (static_cast<std::int64_t>(d.x.size()) != d.n * d.features ||
      static_cast<std::int64_t>(d.y.size()) != d.n)
    throw Error(
        fmt::format("trainer: the {} set '{}' holds {} values and {} labels for {} samples "
                    "of {} features",
                    which, d.name, d.x.size(), d.y.size(), d.n, d.features));
}

// Index of the largest value in each row, compared with the labels; -1 when
// the output is not one row of scores per sample (no accuracy to give).
std::int64_t count_correct(const Tensor& out, std::span<const std::int32_t> y) {
  if (out.shape().rank() != 2 || out.shape()[0] != static_cast<std::int64_t>(y.size())) return -1;
  const std::int64_t rows = out.shape()[0], c = out.shape()[1];
  std::int64_t correct = 0;
  dispatch_dtype(out.dtype(), [&](auto zero) {
    const auto z = out.data<decltype(zero)>();
    for (std::int64_t r = 0; r < rows; ++r) {
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < c; ++k)
        if (z[static_cast<std::size_t>(r * c + k)] > z[static_cast<std::size_t>(r * c + best)])
          best = k;
      correct += best == y[static_cast<std::size_t>(r)];
    }
  });
  return correct;
}
}  // namespace

EvalMetrics Trainer::evaluate(const Dataset& d) {
  check_data(d, "evaluation");
  TapeScope scope(tape_);
  NoGrad off(tape_);
  const int world = group_ ? group_->size() : 1;
  Batches b(d, opt_.eval_batch_size * world, 0, false);
  if (world > 1) b.set_shard(group_->rank(), world);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  // Loss sum, correct answers, batches without an accuracy: summed over the group.
  double sums[3] = {0, 0, 0};
  while (b.next(x, y)) {
    if (y.empty()) continue;
    tape_.clear();
    const auto rows = static_cast<std::int64_t>(y.size());
    const Tensor out = model_(external({rows, d.features}, DType::f32, x.data(), nullptr));
    sums[0] += batch_loss(out, y).value(0) * static_cast<double>(rows);
    const std::int64_t c = count_correct(out, y);
    sums[c < 0 ? 2 : 1] += static_cast<double>(c < 0 ? 1 : c);
  }
  tape_.clear();
  if (world > 1) group_->sum(sums);
  EvalMetrics e;
  e.loss = sums[0] / static_cast<double>(d.n);
  e.accuracy =
      sums[2] > 0 ? std::numeric_limits<double>::quiet_NaN() : sums[1] / static_cast<double>(d.n);
  return e;
}

// The loss of rows [lo, hi) of the batch (x, y) recorded on `tape` and swept
// back, weighted by their share of the whole batch's `rows` when that is not
// all of them; returns the loss summed over those rows.
double Trainer::record_rows(Tape& tape, float* x, std::span<const std::int32_t> y, std::int64_t lo,
                            std::int64_t hi, std::int64_t features, std::int64_t rows) {
  tape.clear();
  const std::int64_t n = hi - lo;
  const Tensor out = model_(external({n, features}, DType::f32, x + lo * features, nullptr));
  const Tensor loss =
      batch_loss(out, y.subspan(static_cast<std::size_t>(lo), static_cast<std::size_t>(n)));
  const double value = loss.value(0);
  // In a group or over replicas, each share's mean is weighted by its share
  // of the batch: the gradients summed over all of them are the batch mean's.
  if (n == rows)
    loss.backward();
  else
    (loss * (static_cast<double>(n) / static_cast<double>(rows))).backward();
  return value * static_cast<double>(n);
}

double Trainer::forward_backward(float* x, std::span<const std::int32_t> y, std::int64_t features,
                                 std::int64_t rows) {
  const auto local = static_cast<std::int64_t>(y.size());
  const int k = static_cast<int>(opt_.replicas);
  if (k == 1) return record_rows(tape_, x, y, 0, local, features, rows);
  // Replicas: share j of the rows is recorded on tape j by one thread, with
  // products on that thread alone, into replica j's gradient buffers; the
  // buffers are then summed into the parameters' own, each thread taking an
  // even share of all the elements.
  std::vector<double> sums(static_cast<std::size_t>(k), 0.0);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(k));
  const std::vector<Parameter*> params = model_.parameters();
  std::vector<Parameter*> touched;
  // No more threads than cores: spinning OpenMP threads beyond them would
  // wait on each other at the barrier; extra replicas take turns instead.
  const int threads = std::min(k, std::max(1, omp_get_num_procs()));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    omp_set_num_threads(1);
    for (int j = t; j < k; j += n) {
      try {
        Tape& tape = j == 0 ? tape_ : *replica_tapes_[static_cast<std::size_t>(j - 1)];
        tape.adopt();
        const TapeScope scope(tape);
        const ReplicaScope replica(j);
        const std::int64_t lo = local * j / k, hi = local * (j + 1) / k;
        if (lo < hi)
          sums[static_cast<std::size_t>(j)] = record_rows(tape, x, y, lo, hi, features, rows);
      } catch (...) {
        errors[static_cast<std::size_t>(j)] = std::current_exception();
      }
    }
#pragma omp barrier
#pragma omp single
    for (Parameter* p : params)
      if (p->reduce_begin()) touched.push_back(p);
    // (the single's implicit barrier: every thread sees `touched`)
    if (!touched.empty()) {
      slices::for_share(touched, t, n, [&](std::size_t i, std::int64_t b, std::int64_t e) {
        touched[i]->reduce_range(b, e);
      });
    }
  }
  for (Parameter* p : touched) p->reduce_end();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  double sum = 0;
  for (double s : sums) sum += s;
  return sum;
}

const std::vector<EpochMetrics>& Trainer::fit(const Dataset& train, const Dataset* test) {
  using Clock = std::chrono::steady_clock;
  check_data(train, "training");
  if (test) check_data(*test, "test");
  TapeScope scope(tape_);
  Batches batches(train, opt_.batch_size, opt_.seed);
  const int world = group_ ? group_->size() : 1;
  if (world > 1) batches.set_shard(group_->rank(), world);
  // Gathering a batch is bound by memory latency (docs/performance.md,
  // "Batch gathering"). With a core left idle by the products (one thread
  // of two, say), the next batch is gathered there during each step; else
  // Batches::next splits the rows over the product threads.
  std::optional<BatchesAhead> ahead;
  if (world == 1 && opt_.replicas == 1 && num_threads() < omp_get_num_procs())
    ahead.emplace(batches);
  const auto start_epoch = [&](std::int64_t e) {
    ahead ? ahead->start_epoch(e) : batches.start_epoch(e);
  };
  const auto next_batch = [&](std::vector<float>& x, std::vector<std::int32_t>& y) {
    return ahead ? ahead->next(x, y) : batches.next(x, y);
  };
  if (opt_.replicas > 1) {
    if (world > 1)
      throw Error(fmt::format(
          "trainer: {} replicas in a group of {} processes; replicas split a batch over the "
          "threads of one process (run one process per core instead)",
          opt_.replicas, world));
    while (replica_tapes_.size() + 1 < static_cast<std::size_t>(opt_.replicas))
      replica_tapes_.push_back(std::make_unique<Tape>());
    for (Parameter* p : model_.parameters()) p->set_replicas(static_cast<int>(opt_.replicas));
  }
  std::optional<FusedUpdate> fused;
  if (opt_.fused_update && opt_.replicas == 1 && world == 1 && !group_ &&
      !tape_.anomaly_enabled() && !tape_.leaf_hook())
    fused.emplace(optim_, tape_);
  const std::int64_t steps_per_epoch = batches.batches_per_epoch();
  const std::int64_t total_steps = steps_per_epoch * opt_.epochs;
  std::vector<float> xb;
  std::vector<std::int32_t> yb;
  for (Callback* cb : callbacks_) cb->on_fit_begin(*this);
  for (std::int64_t epoch = done_ + 1; epoch <= opt_.epochs; ++epoch) {
    for (Callback* cb : callbacks_) cb->on_epoch_begin(*this, epoch);
    start_epoch(epoch);
    const auto t0 = Clock::now();
    double epoch_loss_sum = 0;
    StepInfo info{.epoch = epoch, .steps_in_epoch = steps_per_epoch};
    while (next_batch(xb, yb)) {
      info.global_step = (epoch - 1) * steps_per_epoch + info.step;
      info.rows = ahead ? ahead->global_rows() : batches.global_rows();
      info.local_rows = static_cast<std::int64_t>(yb.size());
      info.lr = lr_at(info.global_step, total_steps);
      optim_.set_lr(info.lr);
      for (Callback* cb : callbacks_) cb->on_step_begin(*this, info);
      optim_.zero_grad();
      const bool fuse =
          fused && std::all_of(callbacks_.begin(), callbacks_.end(),
                               [&](const Callback* cb) { return cb->allows_fused_update(info); });
      if (fuse) fused->begin();
      if (info.local_rows == 0) tape_.clear();  // no share here: no graph either
      // This process's mean loss.
      const double loss_value = info.local_rows == 0
                                    ? 0.0
                                    : forward_backward(xb.data(), yb, train.features, info.rows) /
                                          static_cast<double>(info.local_rows);
      for (Callback* cb : callbacks_) cb->on_after_backward(*this, info);
      info.loss = loss_value;
      if (world > 1) {
        double sum = loss_value * static_cast<double>(info.local_rows);
        group_->sum({&sum, 1});
        info.loss = sum / static_cast<double>(info.rows);
      }
      if (fuse)
        fused->finish();
      else
        optim_.step();
      if (!std::isfinite(info.loss))
        throw Error(fmt::format(
            "training diverged: the loss is {} at epoch {}, step {}; lower the learning rate "
            "(now {})",
            info.loss, epoch, info.step, peak_lr_));
      epoch_loss_sum += info.loss * static_cast<double>(info.rows);
      info.samples_seen += info.rows;
      info.epoch_loss = epoch_loss_sum / static_cast<double>(info.samples_seen);
      for (Callback* cb : callbacks_) cb->on_step_end(*this, info);
      ++info.step;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    EpochMetrics m{.epoch = epoch,
                   .train_loss = info.epoch_loss,
                   .seconds = secs,
                   .samples_per_second = static_cast<double>(info.samples_seen) / secs,
                   .lr = optim_.lr()};
    m.test_loss = m.test_accuracy = std::numeric_limits<double>::quiet_NaN();
    if (test) {
      const EvalMetrics ev = evaluate(*test);
      m.test_loss = ev.loss;
      m.test_accuracy = ev.accuracy;
    }
    history_.push_back(m);
    done_ = epoch;
    if (!opt_.checkpoint.empty() && (!group_ || group_->rank() == 0)) {
      CheckpointMeta meta = opt_.checkpoint_meta;
      meta["epoch"] = std::to_string(epoch);
      save_checkpoint(opt_.checkpoint, model_, &optim_, meta);
    }
    for (Callback* cb : callbacks_) cb->on_epoch_end(*this, history_.back());
  }
  for (Callback* cb : callbacks_) cb->on_fit_end(*this);
  return history_;
}

}  // namespace tapegrad::nn
