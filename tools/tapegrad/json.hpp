#pragma once
// The two JSON pieces the command line writes by hand.
#include <fmt/format.h>

#include <cmath>
#include <string>

namespace tapegrad::cli {

// A quoted, escaped JSON string.
inline std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20)
      o += fmt::format("\\u{:04x}", c);
    else
      o += c;
  }
  return o + "\"";
}

// A number with full precision; null for NaN and infinities (not JSON).
inline std::string json_num(double v) {
  return std::isfinite(v) ? fmt::format("{:.17g}", v) : "null";
}

}  // namespace tapegrad::cli
