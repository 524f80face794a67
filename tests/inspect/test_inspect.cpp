// Inspection: DOT graphs (golden files), traces (golden file), the per-node
// check and the registry catching a wrong op, rendering, the kink guard.
#include <fmt/format.h>
#include <unistd.h>
#include <tapegrad/inspect.hpp>
#include <tapegrad/nn.hpp>
#include <tapegrad/registry.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "helpers.hpp"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
std::string golden(const std::string& name) {
  std::ifstream in(std::string(TAPEGRAD_SOURCE_DIR) + "/tests/inspect/golden/" + name,
                   std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Worked example 1 exactly as `tapegrad example 1` builds it.
std::string example1_dot() {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(-2).named("x"), y = tg::var(5).named("y"), z = tg::var(-4).named("z");
  tg::Scalar q = (x + y).named("q");
  tg::Scalar f = (q * z).named("f");
  f.backward();
  return tg::to_dot(f, {.title = "example 1: f = (x + y) z at x = -2, y = 5, z = -4"});
}

// Worked example 2 with the evaluation order spelled out.
std::string example2_trace() {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar w0 = tg::var(2).named("w0"), x0 = tg::var(-1).named("x0"),
             w1 = tg::var(-3).named("w1"), x1 = tg::var(-2).named("x1"),
             w2 = tg::var(-3).named("w2");
  tg::Scalar p0 = w0 * x0;
  tg::Scalar p1 = w1 * x1;
  tg::Scalar s = p0 + p1;
  tg::Scalar f = tg::sigmoid(s + w2).named("f");
  f.backward();
  return tg::trace(f);
}

// x -> x^2 with a deliberately wrong backward (3x instead of 2x).
void bad_square_forward(tg::Tape& tape, std::uint32_t t) {
  const auto& n = tape.tensor_node(t);
  const double* x = static_cast<const double*>(tape.tensor_node(n.in[0]).value);
  double* y = static_cast<double*>(n.value);
  for (std::int64_t i = 0; i < n.shape.numel(); ++i) y[i] = x[i] * x[i];
}
void bad_square_backward(tg::Tape& tape, std::uint32_t t) {
  const auto& n = tape.tensor_node(t);
  const double* x = static_cast<const double*>(tape.tensor_node(n.in[0]).value);
  const double* g = static_cast<const double*>(n.grad);
  double* gx = static_cast<double*>(tape.grad_buffer(n.in[0]));
  for (std::int64_t i = 0; i < n.shape.numel(); ++i)
    gx[i] += g[i] * 3 * x[i];  // wrong: d(x^2)/dx = 2x
}
const tg::TensorOpDef kBadSquare{
    .name = "test_wrong_square", .forward = &bad_square_forward, .backward = &bad_square_backward};
// Passes the caller's line on, as a library op does.
tg::Tensor bad_square(const tg::Tensor& x, tg::Site where = tg::Site::current()) {
  return tg::record_op(kBadSquare, {x}, x.shape(), {}, where);
}
}  // namespace

TEST_CASE("DOT of worked example 1 matches the golden file byte for byte", "[inspect][dot]") {
  const std::string dot = example1_dot();
  CHECK(dot == example1_dot());  // deterministic: ids from tape indices
  CHECK(dot == golden("example1.dot"));
  CHECK_THAT(dot, Contains("-4\\n= -4 × 1 (distributes)"));  // add distributes
  CHECK_THAT(dot, Contains("3\\n= 1 × 3 (other input)"));    // mul switches
}

TEST_CASE("trace of worked example 2 matches the golden file", "[inspect][trace]") {
  const std::string t = example2_trace();
  CHECK(t == golden("example2_trace.txt"));
  CHECK_THAT(t, Contains("grad_s9 += grad_s10 × 0.196612 = 0.196612"));
  CHECK_THAT(t, Contains("(add: distributes)"));
}

TEST_CASE("DOT shows fan-out, routing, vanishing and exploding gradients", "[inspect][dot]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(2).named("x");
  tg::Scalar f = x * x + x;  // x used three times
  f.backward();
  CHECK_THAT(tg::to_dot(f), Contains("(3 uses: their gradients add up)"));
  tg::Scalar a = tg::var(1), b = tg::var(3);
  tg::Scalar m = tg::max(a, b);
  m.backward();
  CHECK_THAT(tg::to_dot(m), Contains("(routed away)"));
  tg::Scalar v = tg::var(60);
  tg::Scalar s = tg::sigmoid(tg::sigmoid(v) * 40.0);  // saturated twice
  s.backward();
  CHECK_THAT(tg::to_dot(s), Contains("VANISHING"));
  tg::Scalar e = tg::var(12);
  tg::Scalar big = tg::exp(e) * 2.0;
  big.backward();
  CHECK_THAT(tg::to_dot(big), Contains("EXPLODING"));
}

TEST_CASE("an MLP's graph is clustered by layer, and can collapse each layer", "[inspect][dot]") {
  tg::nn::MLP model({3, 4, 2}, {.dtype = tg::DType::f64, .seed = 1});
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const std::vector<std::int32_t> labels{1};
  tg::Tensor loss = tg::nn::cross_entropy(model(tg::tensor({{0.5, -1, 2}})), labels);
  loss.backward();
  const std::string dot = tg::to_dot(loss);
  CHECK_THAT(dot, Contains("subgraph cluster_0") && Contains("label=\"layer0\"") &&
                      Contains("layer1.weight"));
  const std::string collapsed = tg::to_dot(loss, {.collapse_scopes = true});
  // The first layer keeps its weight (In, Out) and records affine; the
  // others record linear (nn::MLPOptions::first_layout).
  CHECK_THAT(collapsed, Contains("box3d") && Contains("affine → relu") && Contains("→ linear\""));
  CHECK(tg::check_nodes(loss).pass);
}

TEST_CASE("a deliberately wrong op is caught and named by both checks", "[inspect][check]") {
  // 1. gradcheck of a function using it fails.
  const tg::GradcheckResult r =
      tg::gradcheck([](std::span<const tg::Tensor> x) { return tg::sum(bad_square(x[0])); },
                    {input({3}, 1, 0.5, 2)});
  CHECK_FALSE(r.pass);
  // 2. the per-node check names the node and its op, and the DOT marks it.
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({0.5, 1.0, -1.5}, {.requires_grad = true});
  tg::Tensor h = tg::tanh(x);
  tg::Tensor y;
  {
    tg::ScopeName layer(tape, "suspect");
    y = bad_square(h);
  }
  const int line = __LINE__ - 2;
  tg::Tensor loss = tg::sum(tg::exp(y));
  loss.backward();
  const tg::NodeCheckResult nc = tg::check_nodes(loss);
  CHECK_FALSE(nc.pass);
  REQUIRE(nc.first_failure() != nullptr);
  CHECK(nc.first_failure()->op == "test_wrong_square");
  CHECK(nc.first_failure()->id == tg::NodeId{true, y.index()});
  CHECK_THAT(nc.str(), Contains("first failing node: t") &&
                           Contains("(test_wrong_square, in suspect), created at ") &&
                           Contains(fmt::format("test_inspect.cpp:{} ", line)));
  const std::string dot = tg::to_dot(loss, {.highlight = {nc.first_failure()->id}});
  CHECK_THAT(dot, Contains("FAILED node check"));
  // 3. registered like any op, the registry check fails on it by name.
  tg::register_op_check({"test_wrong_square",
                         {{4}},
                         [](std::span<const tg::Tensor> in) { return bad_square(in[0]); },
                         0.5,
                         2});
  bool found = false;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) {
    if (c.op != "test_wrong_square") continue;
    found = true;
    CHECK_FALSE(tg::gradcheck(c.fn, {input(c.shapes[0], 3, c.lo, c.hi)}).pass);
  }
  CHECK(found);
}

TEST_CASE("every registered op passes its gradient check", "[inspect][registry]") {
  std::set<std::string> names;
  std::uint64_t seed = 1;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) {
    if (c.op.rfind("test_wrong_", 0) == 0) continue;  // the deliberately wrong op of the test above
    names.insert(c.op);
    std::vector<tg::GradcheckInput> in;
    for (const tg::Shape& s : c.shapes) in.push_back(input(s, seed++, c.lo, c.hi, c.gap));
    INFO(c.op);
    require_gradcheck(c.fn, in);
  }
  for (const char* op : {"add",
                         "sub",
                         "mul",
                         "div",
                         "maximum",
                         "minimum",
                         "neg",
                         "exp",
                         "log",
                         "sqrt",
                         "abs",
                         "pow",
                         "sigmoid",
                         "tanh",
                         "relu",
                         "leaky_relu",
                         "scale",
                         "sum",
                         "mean",
                         "max",
                         "matmul",
                         "transpose",
                         "reshape",
                         "slice_rows",
                         "concat",
                         "linear",
                         "affine",
                         "softmax",
                         "softmax_cross_entropy",
                         "bce_with_logits"})
    CHECK(names.count(op) == 1);
}

TEST_CASE("the kink guard reports 'not differentiable here' instead of failing",
          "[inspect][check]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({0.0, 1.0, -2.0}, {.requires_grad = true});
  tg::Tensor y = tg::sum(tg::relu(x) + tg::abs(x));
  y.backward();
  const tg::NodeCheckResult nc = tg::check_nodes(y);
  CHECK(nc.pass);
  CHECK_THAT(nc.str(), Contains("kink (not differentiable here)"));
  tg::Scalar s = tg::var(0.0);
  tg::Scalar r = tg::relu(s);
  r.backward();
  CHECK(tg::check_nodes(r).nodes[0].status == "kink (not differentiable here)");
}

TEST_CASE("graphs render through Graphviz; a bad format keeps the DOT text", "[inspect][render]") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("tapegrad-render-{}", ::getpid());
  fs::create_directories(dir);
  const std::string dot = example1_dot();
  tg::write_graph(dot, (dir / "g.svg").string());
  std::ifstream svg(dir / "g.svg");
  std::string text{std::istreambuf_iterator<char>(svg), {}};
  CHECK_THAT(text, Contains("<svg") && Contains("f (mul)"));
  REQUIRE_THROWS_WITH(tg::write_graph(dot, (dir / "g.bmpx").string()),
                      Contains("unknown graph format '.bmpx'") && Contains("g.bmpx.dot"));
  CHECK(fs::exists(dir / "g.bmpx.dot"));
  REQUIRE_THROWS_WITH(tg::write_graph("digraph {", (dir / "h.svg").string()),
                      Contains("could not parse"));
  fs::remove_all(dir);
}
