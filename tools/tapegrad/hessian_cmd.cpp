// `tapegrad hessian`: the value, gradient and Hessian of an expression at a
// point, by forward-over-reverse sweeps over its tape (higher.hpp).
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "expr.hpp"
#include "inspect_cmds.hpp"
#include "json.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/sparse.hpp"

namespace tapegrad::cli {

namespace {
using Bindings = std::vector<std::pair<std::string, double>>;

// The value, the gradient and a Hessian, as a table or as JSON with exactly
// the keys expression, value, gradient and hessian. A dense Hessian
// (n x n, row-major) prints as rows; a sparse one (`S`, its lower
// triangle's values in `H`) as its entries.
void print_hessian(const HessianOptions& o, const Bindings& at, double value,
                   std::span<const double> grad, std::span<const double> H,
                   const SparseHessian* S = nullptr) {
  const std::size_t n = at.size();
  for (double h : H)
    if (!std::isfinite(h))
      throw Error(fmt::format("hessian: the Hessian of '{}' at {} is not finite ({})", o.expression,
                              o.at, h));
  if (o.json) {
    std::string s = fmt::format("{{\n  \"expression\": {},\n  \"value\": {},\n  \"gradient\": {{",
                                json_str(o.expression), json_num(value));
    for (std::size_t i = 0; i < n; ++i)
      s += fmt::format("{}{}: {}", i ? ", " : "", json_str(at[i].first), json_num(grad[i]));
    s += "},\n  \"hessian\": ";
    if (S) {
      const auto list = [&](auto&& get) {
        std::string l = "[";
        for (std::size_t k = 0; k < S->nnz(); ++k) l += fmt::format("{}{}", k ? ", " : "", get(k));
        return l + "]";
      };
      s += fmt::format("{{\"rows\": {}, \"cols\": {}, \"values\": {}, \"colors\": {}}}",
                       list([&](std::size_t k) { return fmt::format("{}", S->rows()[k]); }),
                       list([&](std::size_t k) { return fmt::format("{}", S->cols()[k]); }),
                       list([&](std::size_t k) { return json_num(H[k]); }), S->colors());
      fmt::print("{}\n}}\n", s);
      return;
    }
    s += "{";
    for (std::size_t i = 0; i < n; ++i) {
      s += fmt::format("{}\n    {}: {{", i ? "," : "", json_str(at[i].first));
      for (std::size_t j = 0; j < n; ++j)
        s += fmt::format("{}{}: {}", j ? ", " : "", json_str(at[j].first), json_num(H[i * n + j]));
      s += "}";
    }
    fmt::print("{}\n  }}\n}}\n", s);
    return;
  }
  fmt::print("f = {}\nvalue = {:.10g}\n", o.expression, value);
  for (std::size_t i = 0; i < n; ++i) fmt::print("df/d{} = {:.10g}\n", at[i].first, grad[i]);
  if (S) {
    fmt::print("\nHessian, {} nonzeros of the lower triangle, {} colors:\n", S->nnz(), S->colors());
    for (std::size_t k = 0; k < S->nnz(); ++k)
      fmt::print("  d2f/d{}d{} = {:.10g}\n", at[S->rows()[k]].first, at[S->cols()[k]].first, H[k]);
    return;
  }
  fmt::print("\nHessian:\n{:>8}", "");
  for (const auto& [name, _] : at) fmt::print(" {:>14}", name);
  fmt::print("\n");
  for (std::size_t i = 0; i < n; ++i) {
    fmt::print("{:>8}", at[i].first);
    for (std::size_t j = 0; j < n; ++j) fmt::print(" {:>14.10g}", H[i * n + j]);
    fmt::print("\n");
  }
}

// "1,0.5" -> one weight per expression; a bad item is an error naming it.
std::vector<double> parse_weights(const std::string& text, std::size_t count) {
  std::vector<double> w;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(',', start);
    const std::string item = text.substr(start, end == std::string::npos ? end : end - start);
    char* stop = nullptr;
    const double v = std::strtod(item.c_str(), &stop);
    if (item.empty() || *stop != '\0' || !std::isfinite(v))
      throw Error(
          fmt::format("hessian: weight {} ('{}') is not a finite number", w.size() + 1, item));
    w.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (w.size() != count)
    throw Error(fmt::format("hessian: {} weights given for {} expressions", w.size(), count));
  return w;
}

// Several expressions (or --weights, or --sparse): the Hessian of their
// weighted sum, by a VectorFunction's forward-over-reverse sweeps, dense or
// through the star coloring.
int run_weighted(const HessianOptions& o, Spans& spans, std::size_t& which) {
  const std::vector<std::string> exprs = split_expressions(o.expression, "hessian");
  const Bindings at = parse_bindings(o.at);
  if (at.empty()) throw Error("hessian: --at gives no variables");
  const std::vector<double> w = o.weights.empty() ? std::vector<double>(exprs.size(), 1.0)
                                                  : parse_weights(o.weights, exprs.size());
  Tape tape;
  TapeScope scope(tape);
  Leaves leaves;
  std::vector<Scalar> inputs, outputs;
  for (const auto& [name, v] : at) {
    leaves[name] = tape.variable(v).named(name);
    inputs.push_back(leaves[name]);
  }
  for (which = 0; which < exprs.size(); ++which)
    outputs.push_back(parse_expression(exprs[which], leaves, &spans));
  const VectorFunction F(tape, inputs, outputs);
  std::vector<double> x, y(exprs.size()), grad(inputs.size());
  for (const auto& [_, v] : at) x.push_back(v);
  F.vjp(x, w, grad, y);  // the gradient of the weighted sum, and the values
  double value = 0;
  for (std::size_t k = 0; k < y.size(); ++k) value += w[k] * y[k];
  if (o.sparse) {
    const SparseHessian S(F);
    std::vector<double> sv(S.nnz());
    S.evaluate(x, w, sv);
    print_hessian(o, at, value, grad, sv, &S);
  } else {
    std::vector<double> H(inputs.size() * inputs.size());
    F.hessian(x, w, H);
    print_hessian(o, at, value, grad, H);
  }
  return 0;
}

int run_hessian_in(const HessianOptions& o, Spans& spans) {
  const Bindings at = parse_bindings(o.at);
  if (at.empty()) throw Error("hessian: --at gives no variables");
  Tape tape;
  TapeScope scope(tape);
  DetectAnomaly anomaly(tape);  // a NaN or an infinity is an error naming its op
  Leaves leaves;
  std::vector<Ref> inputs;
  for (const auto& [name, v] : at) {
    leaves[name] = tape.variable(v).named(name);
    inputs.push_back(leaves[name]);
  }
  const Scalar f = parse_expression(o.expression, leaves, &spans);
  const std::vector<double> H = hessian(f, inputs);  // leaves the gradient on the tape
  std::vector<double> grad;
  for (const Ref& r : inputs) grad.push_back(r.scalar().grad());
  print_hessian(o, at, f.value(), grad, H);
  return 0;
}
}  // namespace

// Errors of the sweeps at a node of the expression point into the expression.
int run_hessian(const HessianOptions& o) {
  Spans spans;
  const bool weighted =
      o.expression.find(';') != std::string::npos || !o.weights.empty() || o.sparse;
  std::size_t which = 0;
  try {
    return weighted ? run_weighted(o, spans, which) : run_hessian_in(o, spans);
  } catch (const AnomalyError& e) {
    rethrow_in_expression(e, spans);
  } catch (const Error& e) {
    const std::string m = e.what();
    if (weighted && !m.starts_with("hessian:") &&
        which < split_expressions(o.expression, "hessian").size())
      throw Error(fmt::format("expression {}: {}", which + 1, m));
    throw;
  }
}

}  // namespace tapegrad::cli
