// SVG charts of our own for the training report: axes with round ticks,
// lines with hoverable points, a log scale for norms and ratios.
#include "report/chart.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "inspect/html.hpp"

namespace tapegrad::report::detail {
namespace {

using tapegrad::detail::html_escape;

const char* const kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string tick_text(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e-3 && a < 1e5) {
    std::string s = fmt::format("{:.4f}", v);
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s;
  }
  return fmt::format("{:.0e}", v);
}

// Round ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> linear_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double p = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

}  // namespace

std::string attr_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return fmt::format("{}", v);
}

std::string line_chart(const std::vector<Series>& series, const ChartOptions& opt) {
  const double left = 64, right = 16, top = 28, bottom = 40;
  const double w = opt.width - left - right, h = opt.height - top - bottom;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  const auto usable = [&](double y) { return std::isfinite(y) && (!opt.log_y || y > 0); };
  for (const Series& s : series)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      if (usable(s.y[i])) y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  std::string out = fmt::format(
      "<figure class=\"tg-chart\"><figcaption>{}</figcaption><svg class=\"tg-chart-svg\" "
      "width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\">",
      html_escape(opt.title), opt.width, opt.height, opt.width, opt.height);
  if (!(x0 <= x1) || !(y0 <= y1))
    return out + "<text x=\"20\" y=\"40\">no data</text></svg></figure>";
  if (x0 == x1) x0 -= 0.5, x1 += 0.5;
  const auto ty = [&](double y) { return opt.log_y ? std::log10(y) : y; };
  double ly0 = ty(y0), ly1 = ty(y1);
  if (opt.log_y) {
    ly0 = std::floor(ly0), ly1 = std::ceil(ly1);
    if (opt.band_lo < opt.band_hi)
      ly0 = std::min(ly0, std::log10(opt.band_lo)), ly1 = std::max(ly1, std::log10(opt.band_hi));
  } else if (ly0 == ly1) {
    ly0 -= 0.5, ly1 += 0.5;
  } else {
    const double pad = (ly1 - ly0) * 0.05;
    ly0 -= pad, ly1 += pad;
  }
  if (ly0 == ly1) ly0 -= 1, ly1 += 1;
  const auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * w; };
  const auto py = [&](double v) { return top + h - (v - ly0) / (ly1 - ly0) * h; };
  // Band, axes, ticks and grid.
  if (opt.log_y && opt.band_lo < opt.band_hi) {
    const double a = py(std::log10(opt.band_hi)), b = py(std::log10(opt.band_lo));
    out += fmt::format(
        "<rect class=\"tg-band\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
        "height=\"{:.1f}\"><title>{}</title></rect>",
        left, a, w, b - a, html_escape(opt.band_label));
  }
  out += fmt::format("<rect class=\"tg-frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                     left, top, w, h);
  std::vector<double> yt;
  if (opt.log_y) {
    const int span = static_cast<int>(ly1 - ly0);
    const int stride = std::max(1, span / 6);
    for (int e = static_cast<int>(ly0); e <= static_cast<int>(ly1); e += stride) yt.push_back(e);
  } else {
    yt = linear_ticks(ly0, ly1);
  }
  for (double v : yt) {
    const double y = py(v);
    out += fmt::format(
        "<line class=\"tg-grid\" x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\"/>"
        "<text class=\"tg-tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>",
        left, left + w, y, y, left - 6, y + 4,
        opt.log_y ? fmt::format("1e{}", static_cast<int>(v)) : tick_text(v));
  }
  for (double v : linear_ticks(x0, x1)) {
    const double x = px(v);
    out += fmt::format(
        "<text class=\"tg-tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", x,
        top + h + 16, tick_text(v));
  }
  out += fmt::format(
      "<text class=\"tg-axis\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>"
      "<text class=\"tg-axis\" transform=\"translate(14 {:.1f}) rotate(-90)\" "
      "text-anchor=\"middle\">{}</text>",
      left + w / 2, opt.height - 6.0, html_escape(opt.x_label), top + h / 2,
      html_escape(opt.y_label));
  // Lines and points; a value the scale cannot show (0 or below on a log
  // scale, NaN, infinity) is drawn as a hollow mark on the frame's edge.
  for (std::size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* colour = kColours[k % std::size(kColours)];
    std::string path;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.y[i])) continue;
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", px(s.x[i]), py(ty(s.y[i])));
    }
    out += fmt::format(
        "<g class=\"tg-series\" data-series=\"{}\" data-name=\"{}\" style=\"color:{}\">"
        "<path d=\"{}\"/>",
        html_escape(s.key), html_escape(s.name), colour, path);
    // Points stay small (a run measures hundreds): numbers in data
    // attributes, the colour from the group; report.js shows them on hover.
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      const bool ok = usable(s.y[i]);
      const double y = ok ? py(ty(s.y[i])) : (std::isinf(s.y[i]) && s.y[i] > 0 ? top : top + h);
      out +=
          fmt::format("<circle{} cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" data-x=\"{}\" data-y=\"{}\"/>",
                      ok ? "" : " class=\"tg-off-scale\"", px(s.x[i]), y, attr_number(s.x[i]),
                      attr_number(s.y[i]));
    }
    out += "</g>";
  }
  out += "</svg><div class=\"tg-keys\">";
  for (std::size_t k = 0; k < series.size(); ++k)
    out += fmt::format("<span class=\"tg-key{}\"><i style=\"background:{}\"></i>{}</span>",
                       series[k].flagged ? " tg-flagged" : "", kColours[k % std::size(kColours)],
                       html_escape(series[k].name));
  return out + "</div></figure>";
}

std::string histogram_chart(const Histogram& hist, const std::string& title,
                            const std::string& key) {
  const int width = 300, height = 150;
  const double left = 8, top = 22, bottom = 22, w = width - 2 * left, h = height - top - bottom;
  std::string out = fmt::format(
      "<figure class=\"tg-hist\"><figcaption>{}</figcaption><svg width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" data-series=\"{}\" data-lo=\"{}\" data-step=\"{}\">",
      html_escape(title), width, height, width, height, html_escape(key), attr_number(hist.lo),
      attr_number((hist.hi - hist.lo) / static_cast<double>(hist.counts.size())));
  std::int64_t most = 0, total = 0;
  for (std::int64_t c : hist.counts) most = std::max(most, c), total += c;
  if (total == 0) return out + "<text x=\"10\" y=\"60\">no data</text></svg></figure>";
  const double bw = w / static_cast<double>(hist.counts.size());
  for (std::size_t i = 0; i < hist.counts.size(); ++i) {
    const double bh = h * static_cast<double>(hist.counts[i]) / static_cast<double>(most);
    out += fmt::format(
        "<rect class=\"tg-bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "data-count=\"{}\"/>",
        left + bw * static_cast<double>(i), top + h - bh, std::max(bw - 1, 0.5), bh,
        hist.counts[i]);
  }
  out += fmt::format(
      "<text class=\"tg-tick\" x=\"{}\" y=\"{}\">{}</text><text class=\"tg-tick\" x=\"{}\" "
      "y=\"{}\" "
      "text-anchor=\"end\">{}</text>",
      left, height - 6, tick_text(hist.lo), width - left, height - 6, tick_text(hist.hi));
  return out + "</svg></figure>";
}

}  // namespace tapegrad::report::detail
