// TrainingMonitor: gradient norms, update-to-weight ratios and histograms,
// measured at a few steps of every epoch.
#include <algorithm>
#include <cmath>

#include "tapegrad/report.hpp"

namespace tapegrad::report {
namespace {
double l2(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}
}  // namespace

Histogram histogram(const std::vector<double>& values, int bins) {
  Histogram h;
  h.counts.assign(static_cast<std::size_t>(std::max(bins, 1)), 0);
  double lo = INFINITY, hi = -INFINITY;
  for (double x : values)
    if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(lo <= hi)) return h;  // nothing finite
  if (lo == hi) lo -= 0.5, hi += 0.5;
  h.lo = lo, h.hi = hi;
  const double scale = static_cast<double>(h.counts.size()) / (hi - lo);
  for (double x : values) {
    if (!std::isfinite(x)) continue;
    const auto b = static_cast<std::size_t>((x - lo) * scale);
    ++h.counts[std::min(b, h.counts.size() - 1)];
  }
  return h;
}

void TrainingMonitor::on_fit_begin(nn::Trainer& t) {
  names_.clear();
  for (const auto& [name, p] : t.model().named_parameters()) names_.push_back(name);
  pending_ = false;
}

bool TrainingMonitor::measured(const nn::StepInfo& s) const {
  const std::int64_t n = std::max<std::int64_t>(1, opt_.samples_per_epoch);
  const std::int64_t every = std::max<std::int64_t>(1, s.steps_in_epoch / n);
  // Every `every`-th step, and always the epoch's last one.
  return (s.step + 1) % every == 0 || s.step + 1 == s.steps_in_epoch;
}

void TrainingMonitor::on_after_backward(nn::Trainer& t, const nn::StepInfo& s) {
  pending_ = measured(s);
  if (!pending_) return;
  StepStats st;
  st.epoch = s.epoch, st.global_step = s.global_step;
  st.at = static_cast<double>(s.epoch - 1) +
          static_cast<double>(s.step + 1) /
              static_cast<double>(std::max<std::int64_t>(1, s.steps_in_epoch));
  const auto params = t.model().parameters();
  before_.resize(params.size());
  last_grads_.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    last_grads_[i] = params[i]->grads();
    st.grad_norm.push_back(l2(last_grads_[i]));
    before_[i] = params[i]->values();
  }
  steps_.push_back(std::move(st));
}

void TrainingMonitor::on_step_end(nn::Trainer& t, const nn::StepInfo&) {
  if (!pending_) return;
  pending_ = false;
  StepStats& st = steps_.back();
  const auto params = t.model().parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::vector<double> after = params[i]->values();
    double d = 0;
    for (std::size_t k = 0; k < after.size(); ++k)
      d += (after[k] - before_[i][k]) * (after[k] - before_[i][k]);
    const double w = l2(before_[i]);
    st.update_ratio.push_back(w > 0 ? std::sqrt(d) / w : (d > 0 ? INFINITY : 0.0));
  }
}

void TrainingMonitor::on_epoch_end(nn::Trainer& t, const nn::EpochMetrics& m) {
  EpochHistograms h;
  h.epoch = m.epoch;
  const auto params = t.model().parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    h.weights.push_back(histogram(params[i]->values(), opt_.bins));
    h.grads.push_back(
        histogram(i < last_grads_.size() ? last_grads_[i] : std::vector<double>{}, opt_.bins));
  }
  hists_.push_back(std::move(h));
}

}  // namespace tapegrad::report
