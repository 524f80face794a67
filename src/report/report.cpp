// The training report page: metrics curves, per-parameter gradient norms and
// update ratios with flags, histograms, and the explorer of one step.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "inspect/html.hpp"
#include "report/chart.hpp"
#include "tapegrad/report.hpp"

namespace tapegrad::report {
namespace {

using tapegrad::detail::html_escape;
using namespace detail;

std::string num(double v) {
  if (!std::isfinite(v)) return attr_number(v);
  return fmt::format("{:.4g}", v);
}

// The median of the finite values (NaN when there are none).
double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return std::nan("");
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

std::string metrics_section(const std::vector<nn::EpochMetrics>& rows) {
  Series train{"train loss", "train_loss", {}, {}}, test{"test loss", "test_loss", {}, {}},
      acc{"test accuracy", "test_accuracy", {}, {}};
  for (const nn::EpochMetrics& r : rows) {
    const auto e = static_cast<double>(r.epoch);
    train.x.push_back(e), train.y.push_back(r.train_loss);
    test.x.push_back(e), test.y.push_back(r.test_loss);
    acc.x.push_back(e), acc.y.push_back(r.test_accuracy);
  }
  std::vector<Series> losses{train};
  const auto has = [](const Series& s) {
    return std::any_of(s.y.begin(), s.y.end(), [](double y) { return !std::isnan(y); });
  };
  if (has(test)) losses.push_back(test);
  std::string out = "<section><h2>Loss and accuracy</h2><div class=\"tg-row\">";
  out += line_chart(losses, {.title = "loss per epoch", .x_label = "epoch", .y_label = "loss"});
  if (has(acc))
    out += line_chart(
        {acc}, {.title = "test accuracy per epoch", .x_label = "epoch", .y_label = "accuracy"});
  return out + "</div></section>\n";
}

std::string layers_section(const TrainingMonitor& m, const ReportOptions& opt) {
  const auto& names = m.names();
  const auto& steps = m.steps();
  std::vector<Series> norms, ratios;
  std::vector<std::string> flags;
  for (std::size_t p = 0; p < names.size(); ++p) {
    Series g{names[p], "grad_norm:" + names[p], {}, {}},
        r{names[p], "update_ratio:" + names[p], {}, {}};
    for (const StepStats& s : steps) {
      if (p < s.grad_norm.size()) g.x.push_back(s.at), g.y.push_back(s.grad_norm[p]);
      if (p < s.update_ratio.size()) r.x.push_back(s.at), r.y.push_back(s.update_ratio[p]);
    }
    // Exploding once is a fault; vanishing is judged on the run's median, so
    // a schedule that ends at a learning rate of zero is not flagged.
    std::string gflag, rflag;
    const double gmed = median(g.y), rmed = median(r.y);
    for (std::size_t i = 0; i < g.y.size() && gflag.empty(); ++i)
      if (!(g.y[i] <= opt.exploding))
        gflag = fmt::format("{}: EXPLODING gradient, norm {} at epoch {:.2f} (above {})", names[p],
                            num(g.y[i]), g.x[i], num(opt.exploding));
    if (gflag.empty() && gmed < opt.vanishing)
      gflag = fmt::format("{}: VANISHING gradient, median norm {} (below {})", names[p], num(gmed),
                          num(opt.vanishing));
    if (rmed > opt.ratio_high)
      rflag = fmt::format("{}: median update/weight {} (above {}: steps too large for the weights)",
                          names[p], num(rmed), num(opt.ratio_high));
    if (rmed < opt.ratio_low)
      rflag = fmt::format("{}: median update/weight {} (below {}: the layer barely learns)",
                          names[p], num(rmed), num(opt.ratio_low));
    g.flagged = !gflag.empty(), r.flagged = !rflag.empty();
    if (!gflag.empty()) flags.push_back(gflag);
    if (!rflag.empty()) flags.push_back(rflag);
    norms.push_back(std::move(g)), ratios.push_back(std::move(r));
  }
  std::string out = "<section><h2>Gradients and updates per parameter</h2>";
  out += fmt::format(
      "<p>Measured at {} steps of training (a few per epoch): the L2 norm of each parameter's "
      "gradient after backward, and |update| / |weight|, the optimiser step's change of the "
      "weights against the weights (L2 norms). A common rule of thumb puts a healthy ratio near "
      "1e-3 (shaded: 1e-4 to 1e-2).</p>",
      steps.size());
  out += "<ul class=\"tg-flags\">";
  if (flags.empty())
    out += fmt::format(
        "<li class=\"tg-ok\">no flags: every gradient norm within [{}, {}] and every update ratio "
        "within [{}, {}]</li>",
        num(opt.vanishing), num(opt.exploding), num(opt.ratio_low), num(opt.ratio_high));
  for (const std::string& f : flags) out += "<li class=\"tg-flag\">" + html_escape(f) + "</li>";
  out += "</ul><div class=\"tg-row\">";
  out += line_chart(
      norms, {.title = "gradient norm", .x_label = "epoch", .y_label = "|grad|", .log_y = true});
  out += line_chart(ratios, {.title = "update / weight",
                             .x_label = "epoch",
                             .y_label = "|update| / |weight|",
                             .log_y = true,
                             .band_lo = 1e-4,
                             .band_hi = 1e-2,
                             .band_label = "1e-4 to 1e-2: around the rule-of-thumb 1e-3"});
  return out + "</div></section>\n";
}

std::string histograms_section(const TrainingMonitor& m, const ReportOptions& opt) {
  const auto& hs = m.histograms();
  if (hs.empty()) return {};
  // First, last and evenly spaced between.
  std::vector<std::size_t> pick;
  const std::size_t want =
      std::min<std::size_t>(hs.size(), static_cast<std::size_t>(std::max(opt.histogram_epochs, 1)));
  for (std::size_t i = 0; i < want; ++i)
    pick.push_back(want == 1 ? hs.size() - 1 : i * (hs.size() - 1) / (want - 1));
  std::string out =
      "<section><h2>Weight and gradient histograms</h2><table class=\"tg-hists\"><tr><th></th>";
  for (std::size_t i : pick) out += fmt::format("<th>epoch {}</th>", hs[i].epoch);
  out += "</tr>";
  for (std::size_t p = 0; p < m.names().size(); ++p)
    for (int kind = 0; kind < 2; ++kind) {
      const char* what = kind == 0 ? "weights" : "gradients";
      out += fmt::format("<tr><th>{}<br>{}</th>", html_escape(m.names()[p]), what);
      for (std::size_t i : pick) {
        const auto& v = kind == 0 ? hs[i].weights : hs[i].grads;
        out += "<td>" +
               (p < v.size()
                    ? histogram_chart(
                          v[p], fmt::format("{} {}, epoch {}", m.names()[p], what, hs[i].epoch),
                          fmt::format("{}:{}:{}", what, m.names()[p], hs[i].epoch))
                    : std::string()) +
               "</td>";
      }
      out += "</tr>";
    }
  return out + "</table></section>\n";
}

}  // namespace

std::string training_report(const std::vector<nn::EpochMetrics>& history,
                            const TrainingMonitor& monitor, const ReportOptions& opt,
                            const Tensor* step_root) {
  std::string body = "<section><table class=\"tg-facts\">";
  for (const auto& [k, v] : opt.facts)
    body += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>";
  if (!history.empty()) {
    const nn::EpochMetrics& last = history.back();
    body += fmt::format(
        "<tr><td>epochs</td><td>{}</td></tr><tr><td>final train loss</td><td>{}</td></tr>",
        last.epoch, num(last.train_loss));
    if (!std::isnan(last.test_accuracy))
      body += fmt::format("<tr><td>final test accuracy</td><td>{:.2f}%</td></tr>",
                          100 * last.test_accuracy);
  }
  body += "</table></section>\n";
  body += metrics_section(history);
  body += layers_section(monitor, opt);
  body += histograms_section(monitor, opt);
  if (step_root) {
    Tape& tape = step_root->checked("training_report");
    body += "<section><h2>One training step, swept</h2>";
    body += tapegrad::detail::explorer_fragment(tape, {true, step_root->index()},
                                                {.title = "one training step", .max_values = 1024});
    body += "</section>\n";
  }
  body += "<div class=\"tg-tooltip\" hidden></div>";
  const std::string head = fmt::format("<style>\n{}</style>\n<script>\n{}</script>\n",
                                       tapegrad::detail::kReportCss, tapegrad::detail::kReportJs);
  return tapegrad::detail::html_page(opt.title, body, head);
}

void write_training_report(const std::string& path, const std::vector<nn::EpochMetrics>& history,
                           const TrainingMonitor& monitor, const ReportOptions& opt,
                           const Tensor* step_root) {
  tapegrad::detail::write_file_atomic(path, training_report(history, monitor, opt, step_root));
}

}  // namespace tapegrad::report
