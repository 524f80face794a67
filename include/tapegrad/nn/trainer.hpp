#pragma once
// The training loop as a library component: epochs of shuffled mini-batches,
// the step (forward, loss, backward, update), the learning-rate schedule,
// evaluation, a metrics row per epoch, checkpoints and resume. Callers add
// behaviour through callbacks instead of copying the loop:
//
//   nn::MLP model({784, 256, 128, 10});
//   nn::Adam adam(model.parameters(), {.lr = 1e-3});
//   nn::Trainer trainer(model, adam, {.epochs = 10, .batch_size = 64});
//   for (const nn::EpochMetrics& m : trainer.fit(train, &test))
//     fmt::print("epoch {}: {:.2f}%\n", m.epoch, 100 * m.test_accuracy);
//
// `tapegrad train` is this class plus option parsing, a progress bar and the
// output files, each of them a Callback.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/nn/checkpoint.hpp"
#include "tapegrad/nn/data.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"

namespace tapegrad::nn {

// The loss of one batch from the model's output and the batch's labels; it
// must return a one-element tensor (a mean over the batch). Memory that a
// loss function gives the tape (external targets) must outlive the step.
using LossFn = std::function<Tensor(const Tensor& output, std::span<const std::int32_t> labels)>;

enum class Schedule {
  constant,  // the optimiser's learning rate throughout
  cosine,    // lr * (1 + cos(pi * step / total_steps)) / 2, down to 0 at the end
};
Schedule parse_schedule(const std::string& name);  // "constant" or "cosine"; throws otherwise
const char* schedule_name(Schedule s);

inline constexpr std::int64_t kMaxReplicas = 64;

struct TrainerOptions {
  std::int64_t epochs = 10;      // train until this epoch (counted from 1)
  std::int64_t batch_size = 64;  // the last batch of an epoch may be smaller
  std::uint64_t seed = 1;        // shuffling: the order depends on seed and epoch only
  Schedule schedule = Schedule::constant;
  std::int64_t eval_batch_size = 1000;
  // Splits every batch into this many shares, run at once by threads of
  // this process (one per core at most; extra shares take turns), each
  // share with a tape and gradient buffers of its own and its products on
  // one core. The gradients are summed before the update, so a step
  // computes the same mean gradient as with 1 (up to the order of float
  // additions). It pays on large batches (docs/design.md, "Replicas").
  // The loss function then runs on several threads at once
  // (current_replica() tells which). Not in a process group.
  std::int64_t replicas = 1;
  // Updates each parameter inside the backward sweep, as soon as its
  // gradient is final (nn::FusedUpdate), instead of in a pass after it: the
  // same numbers, with the gradient still in cache. Used only where it
  // cannot change what anyone sees: one replica, no process group, anomaly
  // detection off, and every callback allowing it for the step
  // (Callback::allows_fused_update); otherwise the update runs after
  // on_after_backward as usual. Off by default: it gains only with two
  // threads at small batches (docs/performance.md; `tapegrad train` turns
  // it on for batches of one row).
  bool fused_update = false;
  // Written (atomically) after every epoch when not empty, with the epoch in
  // its metadata beside checkpoint_meta; resume() reads it back. In a
  // process group only rank 0 writes it.
  std::string checkpoint{};
  CheckpointMeta checkpoint_meta{};
};

// One row of metrics: what an epoch did. test_* are NaN without a test set.
struct EpochMetrics {
  std::int64_t epoch = 0;
  double train_loss = 0;  // mean over the epoch's samples
  double test_loss = 0, test_accuracy = 0;
  double seconds = 0;  // training time of the epoch, evaluation excluded
  double samples_per_second = 0;
  double lr = 0;  // the learning rate of the epoch's last step
};

struct EvalMetrics {
  double loss = 0;
  double accuracy = 0;  // argmax of each output row against the label; NaN unless the
                        // output has one row of scores per sample
};

// Where a step is, for callbacks.
struct StepInfo {
  std::int64_t epoch = 0;
  std::int64_t step = 0;  // within the epoch, from 0
  std::int64_t steps_in_epoch = 0;
  std::int64_t global_step = 0;   // over the whole run, from 0
  std::int64_t rows = 0;          // samples in this batch, over all processes
  std::int64_t local_rows = 0;    // of them, this process's share (= rows in one process)
  std::int64_t samples_seen = 0;  // in this epoch, this batch included (after the step)
  double lr = 0;
  double loss = 0;        // this batch's loss over all processes (step end only)
  double epoch_loss = 0;  // mean loss of the epoch so far (step end only)
};

class Trainer;

// The processes one data-parallel run is spread over (dist::DataParallel is
// the MPI one). The trainer takes its share of every batch from rank() and
// size(), scales its loss so that gradients summed over the processes are
// those of the whole batch's mean, and sums its metrics through sum().
// Summing the gradients themselves is the group's work, done from a
// Callback. Without a group a run is one process.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Element-wise sum over all processes, in place; every process calls it
  // at the same points of the run.
  virtual void sum(std::span<double> values) = 0;
};

// Hooks into the loop; every method does nothing unless overridden, and a
// trainer without callbacks runs none (the step costs the same as a loop
// written by hand). Exceptions thrown here end fit() and propagate.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_fit_begin(Trainer&) {}
  virtual void on_epoch_begin(Trainer&, std::int64_t /*epoch*/) {}
  virtual void on_step_begin(Trainer&, const StepInfo&) {}
  // After backward, before the update: every parameter's gradient of this
  // batch is available (Parameter::grad).
  virtual void on_after_backward(Trainer&, const StepInfo&) {}
  // Asked before each step: true when that step's update may run inside the
  // backward sweep, before on_after_backward, because this callback changes
  // no gradient and does not need the parameters as they were before the
  // update. False by default, so that a callback written without this in
  // mind (gradient clipping, a reducer) sees what it expects.
  virtual bool allows_fused_update(const StepInfo&) const { return false; }
  virtual void on_step_end(Trainer&, const StepInfo&) {}
  // After evaluation and the checkpoint.
  virtual void on_epoch_end(Trainer&, const EpochMetrics&) {}
  virtual void on_fit_end(Trainer&) {}
};

class Trainer {
 public:
  // Trains `model` with `opt` (whose current learning rate is the schedule's
  // peak). The loss defaults to softmax cross-entropy on the output as logits.
  Trainer(Module& model, Optimizer& opt, TrainerOptions options = {});
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  void set_loss(LossFn loss) { loss_ = std::move(loss); }
  // Callbacks run in the order added; the trainer does not own them.
  void add_callback(Callback& cb) { callbacks_.push_back(&cb); }
  void clear_callbacks() { callbacks_.clear(); }
  // Spreads fit() and evaluate() over a group of processes (not owned);
  // nullptr for one process.
  void set_group(ProcessGroup* group) { group_ = group; }
  ProcessGroup* group() const { return group_; }

  // Restores model and optimiser from `checkpoint` (TrainerOptions's when
  // empty) and returns the epoch it holds; fit() then goes on after it.
  // Metrics of earlier epochs can be handed back with set_history.
  std::int64_t resume(const std::string& checkpoint = {});
  void set_history(std::vector<EpochMetrics> rows) { history_ = std::move(rows); }

  // Runs the epochs after the last one done up to options().epochs, and
  // returns every epoch's metrics (restored ones first).
  const std::vector<EpochMetrics>& fit(const Dataset& train, const Dataset* test = nullptr);
  // Loss and accuracy on a data set, without recording gradients.
  EvalMetrics evaluate(const Dataset& data);

  // The learning rate of a global step under the schedule.
  double lr_at(std::int64_t global_step, std::int64_t total_steps) const;

  const std::vector<EpochMetrics>& history() const { return history_; }
  std::int64_t epochs_done() const { return done_; }
  // Sets the epochs done without reading a checkpoint: for a process whose
  // state came from another one (dist::DataParallel after rank 0 resumed).
  void set_epochs_done(std::int64_t epochs) { done_ = epochs; }
  const TrainerOptions& options() const { return opt_; }
  Module& model() { return model_; }
  Optimizer& optimizer() { return optim_; }
  // The tape the steps record on (cleared at the start of each step, so a
  // step-end callback still sees the step's graph). With replicas it holds
  // replica 0's share of the batch.
  Tape& tape() { return tape_; }

 private:
  Tensor batch_loss(const Tensor& output, std::span<const std::int32_t> labels);
  double forward_backward(float* x, std::span<const std::int32_t> y, std::int64_t features,
                          std::int64_t rows);
  double record_rows(Tape& tape, float* x, std::span<const std::int32_t> y, std::int64_t lo,
                     std::int64_t hi, std::int64_t features, std::int64_t rows);
  Module& model_;
  Optimizer& optim_;
  TrainerOptions opt_;
  LossFn loss_;
  double peak_lr_;
  std::vector<Callback*> callbacks_;
  ProcessGroup* group_ = nullptr;
  std::vector<EpochMetrics> history_;
  std::int64_t done_ = 0;
  Tape tape_;
  std::vector<std::unique_ptr<Tape>> replica_tapes_;  // replicas 1, 2, ...
};

}  // namespace tapegrad::nn
