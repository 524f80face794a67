// Differential testing, the tapegrad half: builds random graphs of the
// engine's ops on random float64 tensors, runs them forward and backward, and
// writes one JSON line per graph (inputs, ops, the value of every node and
// the gradient of every input). tools/difftest.py replays each graph in
// PyTorch and compares.
//   tapegrad_difftest --graphs 300 --seed 1 > graphs.jsonl
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <tapegrad/tapegrad.hpp>

#include <random>
#include <string>
#include <vector>

namespace tg = tapegrad;

namespace {

struct Node {
  tg::Tensor t;
  std::string json;  // how to rebuild it
};

std::string shape_json(const tg::Shape& s) {
  std::string o = "[";
  for (int i = 0; i < s.rank(); ++i) o += fmt::format("{}{}", i ? "," : "", s[i]);
  return o + "]";
}
std::string values_json(const std::vector<double>& v) {
  std::string o = "[";
  for (std::size_t i = 0; i < v.size(); ++i) o += fmt::format("{}{:.17g}", i ? "," : "", v[i]);
  return o + "]";
}
bool broadcastable(const tg::Shape& a, const tg::Shape& b) {
  for (int i = 1; i <= std::min(a.rank(), b.rank()); ++i) {
    const auto x = a[a.rank() - i], y = b[b.rank() - i];
    if (x != y && x != 1 && y != 1) return false;
  }
  return true;
}

// The unary math functions, by the names tools/difftest.py knows them by.
using Unary = tg::Tensor (*)(const tg::Tensor&);
const std::pair<const char*, Unary> kMath[] = {
    {"sin", [](const tg::Tensor& x) { return tg::sin(x); }},
    {"cos", [](const tg::Tensor& x) { return tg::cos(x); }},
    {"tan_t", [](const tg::Tensor& x) { return tg::tan(tg::tanh(x)); }},
    {"asin_t", [](const tg::Tensor& x) { return tg::asin(tg::tanh(x) * 0.9); }},
    {"acos_t", [](const tg::Tensor& x) { return tg::acos(tg::tanh(x) * 0.9); }},
    {"atan", [](const tg::Tensor& x) { return tg::atan(x); }},
    {"sinh_t", [](const tg::Tensor& x) { return tg::sinh(tg::tanh(x)); }},
    {"cosh_t", [](const tg::Tensor& x) { return tg::cosh(tg::tanh(x)); }},
    {"asinh", [](const tg::Tensor& x) { return tg::asinh(x); }},
    {"acosh_a", [](const tg::Tensor& x) { return tg::acosh(tg::abs(x) + 1.5); }},
    {"atanh_t", [](const tg::Tensor& x) { return tg::atanh(tg::tanh(x) * 0.9); }},
    {"erf", [](const tg::Tensor& x) { return tg::erf(x); }},
    {"erfc", [](const tg::Tensor& x) { return tg::erfc(x); }},
    {"log1p_a", [](const tg::Tensor& x) { return tg::log1p(tg::abs(x)); }},
    {"expm1_t", [](const tg::Tensor& x) { return tg::expm1(tg::tanh(x)); }},
    {"log2_a", [](const tg::Tensor& x) { return tg::log2(tg::abs(x) + 0.5); }},
    {"log10_a", [](const tg::Tensor& x) { return tg::log10(tg::abs(x) + 0.5); }},
    {"exp2_t", [](const tg::Tensor& x) { return tg::exp2(tg::tanh(x)); }},
    {"cbrt_a", [](const tg::Tensor& x) { return tg::cbrt(tg::abs(x) + 0.5); }},
    {"floor", [](const tg::Tensor& x) { return tg::floor(x); }},
    {"ceil", [](const tg::Tensor& x) { return tg::ceil(x); }},
    {"round", [](const tg::Tensor& x) { return tg::round(x); }},
    {"trunc", [](const tg::Tensor& x) { return tg::trunc(x); }},
};

std::string one_graph(std::uint64_t seed, int max_ops) {
  std::mt19937_64 rng(seed);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  tg::Tape tape;
  tg::TapeScope scope(tape);
  std::vector<Node> nodes;
  std::string inputs;
  const int n_inputs = 2 + static_cast<int>(pick(3));
  for (int i = 0; i < n_inputs; ++i) {
    std::vector<std::int64_t> dims;
    const int rank = 1 + static_cast<int>(pick(3));
    for (int d = 0; d < rank; ++d) dims.push_back(1 + static_cast<std::int64_t>(pick(4)));
    const tg::Shape s(dims);
    tg::Tensor t = tg::uniform(s, -2, 2, rng(), {.requires_grad = true});
    inputs += fmt::format("{}{{\"shape\":{},\"values\":{}}}", i ? "," : "", shape_json(s),
                          values_json(t.values()));
    nodes.push_back({t, ""});
  }
  std::string ops;
  const int n_ops = 1 + static_cast<int>(pick(static_cast<std::size_t>(max_ops)));
  for (int k = 0; k < n_ops; ++k) {
    const std::size_t a = pick(nodes.size()), b = pick(nodes.size());
    const tg::Tensor& x = nodes[a].t;
    const tg::Tensor& y = nodes[b].t;
    const int r = x.rank();
    std::string op;
    tg::Tensor out;
    std::string attrs = "{}";
    const std::size_t which = pick(24);
    if (r == 0 && (which == 14 || which == 15 || which == 16 || which == 19))
      continue;  // need an axis
    switch (which) {
      case 0:
        if (broadcastable(x.shape(), y.shape())) op = "add", out = x + y;
        break;
      case 1:
        if (broadcastable(x.shape(), y.shape())) op = "sub", out = x - y;
        break;
      case 2:
        if (broadcastable(x.shape(), y.shape())) op = "mul", out = x * y;
        break;
      case 3:
        if (broadcastable(x.shape(), y.shape())) op = "div_safe", out = x / (tg::abs(y) + 0.5);
        break;
      case 4:
        if (broadcastable(x.shape(), y.shape())) op = "maximum", out = tg::maximum(x, y);
        break;
      case 5:
        if (broadcastable(x.shape(), y.shape())) op = "minimum", out = tg::minimum(x, y);
        break;
      case 6:
        op = "exp_safe", out = tg::exp(tg::tanh(x));
        break;
      case 7:
        op = "log_safe", out = tg::log(tg::abs(x) + 0.5);
        break;
      case 8:
        op = "sqrt_safe", out = tg::sqrt(tg::abs(x) + 0.5);
        break;
      case 9:
        op = "sigmoid", out = tg::sigmoid(x);
        break;
      case 10:
        op = "tanh", out = tg::tanh(x);
        break;
      case 11:
        op = "relu", out = tg::relu(x);
        break;
      case 12:
        op = "leaky_relu", out = tg::leaky_relu(x, 0.1);
        break;
      case 13:
        op = "pow3", out = tg::pow(x, 3);
        break;
      case 14: {
        const int axis = static_cast<int>(pick(static_cast<std::size_t>(r)));
        const bool keep = pick(2);
        op = "sum_axis", out = tg::sum(x, axis, keep),
        attrs = fmt::format("{{\"axis\":{},\"keepdims\":{}}}", axis, keep);
        break;
      }
      case 15: {
        const int axis = static_cast<int>(pick(static_cast<std::size_t>(r)));
        const bool keep = pick(2);
        op = "mean_axis", out = tg::mean(x, axis, keep),
        attrs = fmt::format("{{\"axis\":{},\"keepdims\":{}}}", axis, keep);
        break;
      }
      case 16: {
        const int axis = static_cast<int>(pick(static_cast<std::size_t>(r)));
        op = "max_axis", out = tg::max(x, axis, false),
        attrs = fmt::format("{{\"axis\":{}}}", axis);
        break;
      }
      case 17:
        if (r == 2 && y.rank() == 2 && x.shape()[1] == y.shape()[0])
          op = "matmul", out = tg::matmul(x, y);
        break;
      case 18:
        if (r >= 2) op = "transpose", out = tg::transpose(x);
        break;
      case 19:
        op = "softmax", out = tg::softmax(x);
        break;
      case 20:
        op = "abs", out = tg::abs(x);
        break;
      case 21:
      case 22: {  // the C library's functions, each on a transform that keeps x in its domain
        const auto& [name, f] = kMath[pick(std::size(kMath))];
        op = name, out = f(x);
        break;
      }
      case 23: {
        if (!broadcastable(x.shape(), y.shape())) break;
        const std::size_t m = pick(3);
        if (m == 0) op = "atan2", out = tg::atan2(x, y);
        if (m == 1) op = "hypot", out = tg::hypot(x, y);
        if (m == 2) op = "fmod_safe", out = tg::fmod(x, tg::abs(y) + 0.5);
        break;
      }
      default:
        op = "neg", out = -x;
        break;
    }
    if (op.empty()) continue;  // shapes did not fit this op; draw again
    ops += fmt::format("{}{{\"op\":\"{}\",\"args\":[{},{}],\"attrs\":{}}}", ops.empty() ? "" : ",",
                       op, a, b, attrs);
    nodes.push_back({out, ""});
  }
  // Loss: a fixed random weighting of the last node, so every output counts.
  const tg::Tensor& last = nodes.back().t;
  tg::Tensor w = tg::uniform(last.shape(), 0.5, 1.5, rng());
  tg::Tensor loss = tg::sum(last * w);
  loss.backward();
  std::string grads;
  for (int i = 0; i < n_inputs; ++i)
    grads += fmt::format("{}{}", i ? "," : "",
                         values_json(nodes[static_cast<std::size_t>(i)].t.grads()));
  // Second order: the Hessian of the loss and the Jacobian of the last node
  // with respect to every input element (flattened, inputs in order).
  std::vector<tg::Ref> ins;
  for (int i = 0; i < n_inputs; ++i) ins.emplace_back(nodes[static_cast<std::size_t>(i)].t);
  const std::vector<double> H = tg::hessian(loss, ins);
  const std::vector<double> J = tg::jacobian({last}, ins);
  return fmt::format(
      "{{\"seed\":{},\"inputs\":[{}],\"ops\":[{}],\"weight\":{},\"value\":{},\"loss\":{:.17g},"
      "\"grads\":[{}],\"hessian\":{},\"jacobian\":{}}}",
      seed, inputs, ops, values_json(w.values()), values_json(last.values()), loss.value(0), grads,
      values_json(H), values_json(J));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tapegrad differential testing: random graphs as JSON lines"};
  int graphs = 300, max_ops = 8;
  std::uint64_t seed = 1;
  app.add_option("--graphs", graphs, "how many graphs")->capture_default_str();
  app.add_option("--max-ops", max_ops, "ops per graph at most")->capture_default_str();
  app.add_option("--seed", seed, "first seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  for (int g = 0; g < graphs; ++g)
    fmt::print("{}\n", one_graph(seed + static_cast<std::uint64_t>(g), max_ops));
  return 0;
}
