// `tapegrad jacobian`: several expressions over the same variables, their
// values and Jacobian at a point, dense or sparse, and its sparsity pattern
// (vector_function.hpp, sparse.hpp).
#include <fmt/format.h>

#include <cmath>
#include <fstream>

#include "expr.hpp"
#include "inspect_cmds.hpp"
#include "json.hpp"
#include "tapegrad/sparse.hpp"

namespace tapegrad::cli {

// "f; g; h" -> the expressions, trimmed; an empty one is an error naming it.
std::vector<std::string> split_expressions(const std::string& text, const char* cmd) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(';', start);
    std::string e = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    e.erase(0, e.find_first_not_of(" \t\n"));
    e.erase(e.find_last_not_of(" \t\n") + 1);
    if (e.empty()) {
      if (end == std::string::npos && !out.empty()) break;  // a trailing ';'
      throw Error(fmt::format("{}: expression {} is empty (expressions are separated by ';')", cmd,
                              out.size() + 1));
    }
    out.push_back(e);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

namespace {
int run_jacobian_in(const JacobianOptions& o, Spans& spans, std::size_t& which) {
  const std::vector<std::string> exprs = split_expressions(o.expressions, "jacobian");
  const auto at = parse_bindings(o.at);
  if (at.empty()) throw Error("jacobian: --at gives no variables");
  Tape tape;
  TapeScope scope(tape);
  Leaves leaves;
  std::vector<Scalar> inputs;
  for (const auto& [name, v] : at) {
    leaves[name] = tape.variable(v).named(name);
    inputs.push_back(leaves[name]);
  }
  std::vector<Scalar> outputs;
  for (which = 0; which < exprs.size(); ++which)
    outputs.push_back(parse_expression(exprs[which], leaves, &spans));
  const VectorFunction F(tape, inputs, outputs);
  const std::size_t n = inputs.size(), m = outputs.size();
  std::vector<double> x, y(m), J(n * m);
  for (const auto& [_, v] : at) x.push_back(v);
  F.jacobian(x, J, y);
  for (std::size_t k = 0; k < J.size(); ++k)
    if (!std::isfinite(J[k]))
      throw Error(fmt::format("jacobian: d({})/d{} is not finite ({}) at {}", exprs[k / n],
                              at[k % n].first, J[k], o.at));
  const SparseJacobian S(F);
  std::vector<double> sv(S.nnz());
  S.evaluate(x, sv);
  if (!o.pattern.empty()) {
    const std::string pic =
        o.pattern.ends_with(".svg") ? S.pattern().to_svg() : S.pattern().to_text();
    if (o.pattern == "-") {
      fmt::print("{}", pic);
      return 0;
    }
    std::ofstream out(o.pattern, std::ios::binary);
    out << pic;
    if (!out.good())
      throw Error(fmt::format("jacobian: cannot write the pattern to '{}'", o.pattern));
  }
  if (o.json) {
    std::string s = "{\n  \"inputs\": [";
    for (std::size_t c = 0; c < n; ++c)
      s += fmt::format("{}{}", c ? ", " : "", json_str(at[c].first));
    s += "],\n  \"outputs\": [";
    for (std::size_t r = 0; r < m; ++r) s += fmt::format("{}{}", r ? ", " : "", json_str(exprs[r]));
    s += "],\n  \"values\": [";
    for (std::size_t r = 0; r < m; ++r) s += fmt::format("{}{}", r ? ", " : "", json_num(y[r]));
    s += "],\n  \"jacobian\": ";
    if (o.sparse) {
      const auto list = [&](auto&& get) {
        std::string l = "[";
        for (std::size_t k = 0; k < S.nnz(); ++k) l += fmt::format("{}{}", k ? ", " : "", get(k));
        return l + "]";
      };
      s += fmt::format(
          "{{\"rows\": {}, \"cols\": {}, \"values\": {}, \"colors\": {}, \"by\": \"{}\"}}",
          list([&](std::size_t k) { return fmt::format("{}", S.rows()[k]); }),
          list([&](std::size_t k) { return fmt::format("{}", S.cols()[k]); }),
          list([&](std::size_t k) { return json_num(sv[k]); }), S.colors(),
          S.by_rows() ? "rows" : "columns");
    } else {
      s += "[";
      for (std::size_t r = 0; r < m; ++r) {
        s += r ? ",\n    [" : "\n    [";
        for (std::size_t c = 0; c < n; ++c)
          s += fmt::format("{}{}", c ? ", " : "", json_num(J[r * n + c]));
        s += "]";
      }
      s += "\n  ]";
    }
    fmt::print("{}\n}}\n", s);
    return 0;
  }
  for (std::size_t r = 0; r < m; ++r) fmt::print("f{} = {} = {:.10g}\n", r + 1, exprs[r], y[r]);
  if (o.sparse) {
    fmt::print("\n{} nonzeros of {}, {} {} sweeps:\n", S.nnz(), n * m, S.colors(),
               S.by_rows() ? "reverse" : "forward");
    for (std::size_t k = 0; k < S.nnz(); ++k)
      fmt::print("  df{}/d{} = {:.10g}\n", S.rows()[k] + 1, at[S.cols()[k]].first, sv[k]);
    return 0;
  }
  fmt::print("\nJacobian:\n{:>8}", "");
  for (const auto& [name, _] : at) fmt::print(" {:>14}", name);
  fmt::print("\n");
  for (std::size_t r = 0; r < m; ++r) {
    fmt::print("{:>8}", fmt::format("f{}", r + 1));
    for (std::size_t c = 0; c < n; ++c) fmt::print(" {:>14.10g}", J[r * n + c]);
    fmt::print("\n");
  }
  return 0;
}
}  // namespace

int run_jacobian(const JacobianOptions& o) {
  Spans spans;
  std::size_t which = 0;
  try {
    return run_jacobian_in(o, spans, which);
  } catch (const AnomalyError& e) {
    rethrow_in_expression(e, spans);
  } catch (const Error& e) {
    // A parse error names its column in one expression: say which.
    const std::string m = e.what();
    if (which < split_expressions(o.expressions, "jacobian").size() && !m.starts_with("jacobian:"))
      throw Error(fmt::format("expression {}: {}", which + 1, m));
    throw;
  }
}

}  // namespace tapegrad::cli
