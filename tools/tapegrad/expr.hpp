#pragma once
// Expressions for `tapegrad grad`: numbers, variables, + - * / ^, unary
// minus, parentheses, and every function of the op table by its C++ name
// (sin, atan2, erf, log1p, ..., max, min, pow; function_names()). Parsing
// builds the Scalar graph directly on the current tape.
#include <map>
#include <string>
#include <vector>

#include "tapegrad/scalar.hpp"

namespace tapegrad::cli {

inline constexpr int kMaxNesting = 200;
inline constexpr std::size_t kMaxExpressionLength = 1 << 20;

using Leaves = std::map<std::string, Scalar>;

// Parses "x=1,y=-2.5" (also "x=1 y=2"); errors name the offending item.
std::vector<std::pair<std::string, double>> parse_bindings(const std::string& text);

// Where in the expression each node was made: its column (from 1) and the
// subexpression's text, by scalar node index.
struct Span {
  std::size_t column;
  std::string text;
};
using Spans = std::map<std::uint32_t, Span>;

// Builds the expression over the given variables (on their tape); throws
// tapegrad::Error("1:7: expected ')'") etc. A value that is not finite is an
// error at its subexpression ("1:1: acos(x) is not finite: ..."). With
// `spans`, records where each node came from.
Scalar parse_expression(const std::string& text, const Leaves& vars, Spans* spans = nullptr);

// An anomaly of the backward sweep (or of a replay) at a node of the
// expression, told at the subexpression that made it; other errors as they
// are.
[[noreturn]] void rethrow_in_expression(const AnomalyError& e, const Spans& spans);

// The functions the language knows, space-separated.
std::string function_names();

}  // namespace tapegrad::cli
