#pragma once
// Private: line charts and histograms as SVG for the training report. Every
// point carries its numbers (data-series, data-x, data-y) and a <title>, so
// hovering shows them and a test can read them back.
#include <string>
#include <vector>

#include "tapegrad/report.hpp"

namespace tapegrad::report::detail {

struct Series {
  std::string name;  // legend text
  std::string key;   // data-series attribute
  std::vector<double> x, y;
  bool flagged = false;  // drawn in red in the legend
};

struct ChartOptions {
  std::string title, x_label, y_label;
  bool log_y = false;
  double band_lo = 0, band_hi = 0;  // a shaded band of y (log charts), none when equal
  std::string band_label{};
  int width = 640, height = 300;
};

std::string line_chart(const std::vector<Series>& series, const ChartOptions& opt);
std::string histogram_chart(const Histogram& h, const std::string& title, const std::string& key);
// A number for a data attribute: shortest round-trip form, "NaN"/"Infinity".
std::string attr_number(double v);

}  // namespace tapegrad::report::detail
