// `tapegrad hessian`: the value, gradient and Hessian of an expression at a
// point, by forward-over-reverse sweeps over its tape (higher.hpp).
#include <fmt/format.h>

#include <cmath>

#include "expr.hpp"
#include "inspect_cmds.hpp"
#include "json.hpp"
#include "tapegrad/higher.hpp"

namespace tapegrad::cli {

namespace {
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
  try {
    return run_hessian_in(o, spans);
  } catch (const AnomalyError& e) {
    rethrow_in_expression(e, spans);
  }
}

}  // namespace tapegrad::cli
