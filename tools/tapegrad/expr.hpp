#pragma once
// Expressions for `tapegrad grad`: numbers, variables, + - * / ^, unary
// minus, parentheses, and the functions exp log sqrt abs tanh sigmoid relu
// max min. Parsing builds the Scalar graph directly on the current tape.
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

// Builds the expression over the given variables (on their tape); throws
// tapegrad::Error("1:7: expected ')'") etc.
Scalar parse_expression(const std::string& text, const Leaves& vars);

}  // namespace tapegrad::cli
