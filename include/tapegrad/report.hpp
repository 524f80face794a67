#pragma once
// The training report: one self-contained HTML page per run, with the loss
// and accuracy curves, each parameter's gradient norm and update-to-weight
// ratio over training (flagged when they vanish or explode), weight and
// gradient histograms at a few epochs, and the explorer of one training step.
//
//   report::TrainingMonitor monitor;
//   trainer.add_callback(monitor);
//   trainer.fit(train, &test);
//   report::write_training_report("report.html", trainer.history(), monitor, {}, &step_loss);
//
// `tapegrad train` writes report.html this way. Charts are SVG written here,
// with no script library; a small script of ours shows a point's numbers on
// hover. (The report sits above nn and inspect; neither knows of it.)
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/inspect.hpp"
#include "tapegrad/nn/trainer.hpp"

namespace tapegrad::report {

struct MonitorOptions {
  int samples_per_epoch = 8;  // steps per epoch whose gradients and updates are measured
  int bins = 30;              // histogram bins
};

// One measured step: per parameter (in Module::named_parameters order), the
// gradient's L2 norm and |update| / |weight| (L2 norms, the update being the
// optimiser step's change of the weights).
struct StepStats {
  std::int64_t epoch = 0, global_step = 0;
  double at = 0;  // position in training in epochs: epoch - 1 + (step + 1) / steps_in_epoch
  std::vector<double> grad_norm, update_ratio;
};

struct Histogram {
  double lo = 0, hi = 0;
  std::vector<std::int64_t> counts;
};
// Weights after the epoch, and the gradients of the epoch's last measured step.
struct EpochHistograms {
  std::int64_t epoch = 0;
  std::vector<Histogram> weights, grads;  // per parameter
};

Histogram histogram(const std::vector<double>& values, int bins);

// A Callback that measures, at a few steps of every epoch, each parameter's
// gradient norm (after backward, so after any data-parallel reduction of
// callbacks added before it) and its update-to-weight ratio (at step end),
// and takes histograms at every epoch's end. Cost: two copies of the
// parameters at a measured step, nothing at the others.
class TrainingMonitor : public nn::Callback {
 public:
  explicit TrainingMonitor(MonitorOptions opt = {}) : opt_(opt) {}
  void on_fit_begin(nn::Trainer& t) override;
  void on_after_backward(nn::Trainer& t, const nn::StepInfo& s) override;
  void on_step_end(nn::Trainer& t, const nn::StepInfo& s) override;
  void on_epoch_end(nn::Trainer& t, const nn::EpochMetrics& m) override;
  // A measured step needs the weights from before its update.
  bool allows_fused_update(const nn::StepInfo& s) const override { return !measured(s); }

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<StepStats>& steps() const { return steps_; }
  const std::vector<EpochHistograms>& histograms() const { return hists_; }

 private:
  bool measured(const nn::StepInfo& s) const;
  MonitorOptions opt_;
  std::vector<std::string> names_;
  std::vector<StepStats> steps_;
  std::vector<EpochHistograms> hists_;
  std::vector<std::vector<double>> before_, last_grads_;
  bool pending_ = false;
};

struct ReportOptions {
  std::string title = "tapegrad training report";
  std::vector<std::pair<std::string, std::string>> facts{};  // shown at the top: "data", "..."
  double vanishing = 1e-7;   // gradient norm below this is flagged as vanishing
  double exploding = 1e3;    // gradient norm above this (or not finite) is flagged as exploding
  double ratio_low = 1e-6;   // update/weight below this: the layer barely learns
  double ratio_high = 1e-1;  // update/weight above this: steps too large for the weights
  int histogram_epochs = 3;  // histograms shown at this many epochs (first, ..., last)
};

// The report page. `step_root`, when given, is the loss of one recorded
// training step (backward done); the page then embeds its explorer.
std::string training_report(const std::vector<nn::EpochMetrics>& history,
                            const TrainingMonitor& monitor, const ReportOptions& opt = {},
                            const Tensor* step_root = nullptr);
// Writes it to `path` through a temporary file renamed into place.
void write_training_report(const std::string& path, const std::vector<nn::EpochMetrics>& history,
                           const TrainingMonitor& monitor, const ReportOptions& opt = {},
                           const Tensor* step_root = nullptr);

}  // namespace tapegrad::report
