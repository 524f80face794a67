// `tapegrad hessian`: the value, gradient and Hessian of an expression at a
// point, by forward-over-reverse sweeps over its tape (higher.hpp).
#include <fmt/format.h>

#include <cmath>

#include "expr.hpp"
#include "inspect_cmds.hpp"
#include "json.hpp"
#include "tapegrad/higher.hpp"
#include "tapegrad/sparse.hpp"

namespace tapegrad::cli {

namespace {
// Several expressions (or --weights, or --sparse): the Hessian of their
// weighted sum, by a VectorFunction's forward-over-reverse sweeps, dense or
// through the star coloring.
int run_weighted(const HessianOptions& o, Spans& spans, std::size_t& which) {
  const std::vector<std::string> exprs = split_expressions(o.expression, "hessian");
  const auto at = parse_bindings(o.at);
  if (at.empty()) throw Error("hessian: --at gives no variables");
  std::vector<double> w(exprs.size(), 1.0);
  if (!o.weights.empty()) {
    const auto ws = parse_bindings([&] {  // "1,2" as "w0=1,w1=2"
      std::string t;
      std::size_t k = 0, start = 0;
      for (;;) {
        const std::size_t end = o.weights.find(',', start);
        t += fmt::format("{}w{}={}", k ? "," : "", k,
                         o.weights.substr(start, end == std::string::npos ? end : end - start));
        ++k;
        if (end == std::string::npos) break;
        start = end + 1;
      }
      return t;
    }());
    if (ws.size() != exprs.size())
      throw Error(fmt::format("hessian: {} weights given for {} expressions", ws.size(),
                              exprs.size()));
    for (std::size_t k = 0; k < ws.size(); ++k) w[k] = ws[k].second;
  }
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
  const std::size_t n = inputs.size();
  std::vector<double> x, y(exprs.size()), grad(n), H(n * n);
  for (const auto& [_, v] : at) x.push_back(v);
  F.values(x, y);
  double value = 0;
  for (std::size_t k = 0; k < y.size(); ++k) value += w[k] * y[k];
  F.vjp(x, w, grad);
  F.hessian(x, w, H);
  const SparseHessian S(F);
  std::vector<double> sv(S.nnz());
  S.evaluate(x, w, sv);
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
    if (o.sparse) {
      const auto list = [&](auto&& get) {
        std::string l = "[";
        for (std::size_t k = 0; k < S.nnz(); ++k) l += fmt::format("{}{}", k ? ", " : "", get(k));
        return l + "]";
      };
      s += fmt::format("{{\"rows\": {}, \"cols\": {}, \"values\": {}, \"colors\": {}}}",
                       list([&](std::size_t k) { return fmt::format("{}", S.rows()[k]); }),
                       list([&](std::size_t k) { return fmt::format("{}", S.cols()[k]); }),
                       list([&](std::size_t k) { return json_num(sv[k]); }), S.colors());
      fmt::print("{}\n}}\n", s);
      return 0;
    }
    s += "{";
    for (std::size_t i = 0; i < n; ++i) {
      s += fmt::format("{}\n    {}: {{", i ? "," : "", json_str(at[i].first));
      for (std::size_t j = 0; j < n; ++j)
        s += fmt::format("{}{}: {}", j ? ", " : "", json_str(at[j].first), json_num(H[i * n + j]));
      s += "}";
    }
    fmt::print("{}\n  }}\n}}\n", s);
    return 0;
  }
  fmt::print("f = {}\nvalue = {:.10g}\n", o.expression, value);
  for (std::size_t i = 0; i < n; ++i) fmt::print("df/d{} = {:.10g}\n", at[i].first, grad[i]);
  if (o.sparse) {
    fmt::print("\nHessian, {} nonzeros of the lower triangle, {} colors:\n", S.nnz(), S.colors());
    for (std::size_t k = 0; k < S.nnz(); ++k)
      fmt::print("  d2f/d{}d{} = {:.10g}\n", at[S.rows()[k]].first, at[S.cols()[k]].first, sv[k]);
    return 0;
  }
  fmt::print("\nHessian:\n{:>8}", "");
  for (const auto& [name, _] : at) fmt::print(" {:>14}", name);
  fmt::print("\n");
  for (std::size_t i = 0; i < n; ++i) {
    fmt::print("{:>8}", at[i].first);
    for (std::size_t j = 0; j < n; ++j) fmt::print(" {:>14.10g}", H[i * n + j]);
    fmt::print("\n");
  }
  return 0;
}

int run_hessian_in(const HessianOptions& o, Spans& spans) {
  const auto at = parse_bindings(o.at);
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
  const std::size_t n = at.size();
  for (double h : H)
    if (!std::isfinite(h))
      throw Error(fmt::format("hessian: the Hessian of '{}' at {} is not finite ({})", o.expression,
                              o.at, h));
  if (o.json) {
    std::string s = fmt::format("{{\n  \"expression\": {},\n  \"value\": {},\n  \"gradient\": {{",
                                json_str(o.expression), json_num(f.value()));
    for (std::size_t i = 0; i < n; ++i)
      s += fmt::format("{}{}: {}", i ? ", " : "", json_str(at[i].first),
                       json_num(inputs[i].scalar().grad()));
    s += "},\n  \"hessian\": {";
    for (std::size_t i = 0; i < n; ++i) {
      s += fmt::format("{}\n    {}: {{", i ? "," : "", json_str(at[i].first));
      for (std::size_t j = 0; j < n; ++j)
        s += fmt::format("{}{}: {}", j ? ", " : "", json_str(at[j].first), json_num(H[i * n + j]));
      s += "}";
    }
    fmt::print("{}\n  }}\n}}\n", s);
    return 0;
  }
  fmt::print("f = {}\nvalue = {:.10g}\n", o.expression, f.value());
  for (std::size_t i = 0; i < n; ++i)
    fmt::print("df/d{} = {:.10g}\n", at[i].first, inputs[i].scalar().grad());
  fmt::print("\nHessian:\n{:>8}", "");
  for (const auto& [name, _] : at) fmt::print(" {:>14}", name);
  fmt::print("\n");
  for (std::size_t i = 0; i < n; ++i) {
    fmt::print("{:>8}", at[i].first);
    for (std::size_t j = 0; j < n; ++j) fmt::print(" {:>14.10g}", H[i * n + j]);
    fmt::print("\n");
  }
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
