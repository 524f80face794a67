// Anomaly detection: the first NaN or infinity, forward or backward, throws
// an error naming the node, its op, its shape, the sweep and the source line
// that created the node.
#include <fmt/format.h>
#include <tapegrad/nn.hpp>

#include "helpers.hpp"

using Catch::Matchers::Contains;

namespace {
// "test_anomaly.cpp:<line> (", the start of a site in a message.
std::string here(int line) { return fmt::format("test_anomaly.cpp:{} (", line); }
}  // namespace

TEST_CASE("off by default: NaN flows through silently", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(-1);
  CHECK(std::isnan(tg::log(x).value()));
}

TEST_CASE("log of a negative number is caught in the forward sweep", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly on;
  tg::Scalar x = tg::var(-1);
  REQUIRE_THROWS_WITH(tg::log(x),
                      Contains("NaN in the forward sweep: scalar node s2 (log) from s1 = -1"));
  x.named("x");  // a named input is named in the message too
  REQUIRE_THROWS_WITH(tg::log(x), Contains("(log) from s1 'x' = -1 is "));
  tg::Tensor t = tg::tensor({1.0, -2.0, 3.0});
  REQUIRE_THROWS_WITH(tg::log(t), Contains("NaN in the forward sweep: element 1 of tensor node") &&
                                      Contains("(log, shape (3), float64, inputs t"));
}

TEST_CASE("0/0 and an overflowing exp are caught, with the scope", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly on;
  tg::Scalar z = tg::var(0);
  REQUIRE_THROWS_WITH(z / z, Contains("NaN in the forward sweep") && Contains("(div)"));
  tg::Tensor big = tg::tensor({1.0, 800.0}, {.requires_grad = true});
  tg::ScopeName layer(tape, "layer7");
  REQUIRE_THROWS_WITH(tg::exp(big), Contains("infinity in the forward sweep: element 1") &&
                                        Contains("(exp, shape (2)") &&
                                        Contains("in scope 'layer7'"));
}

TEST_CASE("a NaN or infinity born only in backward is caught in the backward sweep", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly on;
  tg::Scalar x = tg::var(0);
  tg::Scalar y = tg::sqrt(x) * 2.0;  // forward fine: sqrt(0) = 0, local partial 1/(2*0) = inf
  REQUIRE_THROWS_WITH(y.backward(),
                      Contains("infinity in the backward sweep: the rule of scalar node") &&
                          Contains("(sqrt, value 0) sent it to node s1") &&
                          Contains("local partial inf"));
  tg::Tensor t = tg::tensor({4.0, 0.0}, {.requires_grad = true});
  tg::Tensor s = tg::sum(tg::sqrt(t));
  REQUIRE_THROWS_WITH(
      s.backward(),
      Contains("infinity in the backward sweep: the rule of tensor node") &&
          Contains("(sqrt, shape (2)) sent it to element 1 of the gradient of its input 0"));
}

TEST_CASE("anomaly mode leaves finite graphs alone", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly on;
  tg::Tensor w = tg::tensor({{0.5, -0.2}, {0.1, 0.3}}, {.requires_grad = true});
  tg::Tensor y = tg::sum(tg::tanh(tg::matmul(w, w)));
  y.backward();
  CHECK(std::isfinite(w.grad(0)));
  CHECK(tape.anomaly_enabled());
}

TEST_CASE("anomaly errors name the source line that created the node", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly on;
  SECTION("a named scalar op") {
    tg::Scalar x = tg::var(-1);
    const int line = __LINE__ + 1;
    auto f = [&] { return tg::log(x); };
    REQUIRE_THROWS_WITH(f(), Contains("(log) from s1 = -1 is ") && Contains("; created at ") &&
                                 Contains(here(line)));
  }
  SECTION("a scalar operator, and a number turned into a constant beside it") {
    tg::Scalar z = tg::var(0);
    const int line = __LINE__ + 1;
    auto f = [&] { return z / z; };
    REQUIRE_THROWS_WITH(f(), Contains("(div)") && Contains(here(line)));
    const int line2 = __LINE__ + 1;
    auto g = [&] { return 1.0 / z; };
    REQUIRE_THROWS_WITH(g(), Contains("(div)") && Contains(here(line2)));
  }
  SECTION("a tensor op and a tensor operator") {
    tg::Tensor t = tg::tensor({1.0, -2.0, 3.0});
    const int line = __LINE__ + 1;
    auto f = [&] { return tg::sqrt(t); };
    REQUIRE_THROWS_WITH(f(), Contains("(sqrt, shape (3)") && Contains(here(line)));
    tg::Tensor zero = tg::zeros({3});
    const int line2 = __LINE__ + 1;
    auto g = [&] { return zero / zero; };
    REQUIRE_THROWS_WITH(g(), Contains("(div, shape (3)") && Contains(here(line2)));
    const int line3 = __LINE__ + 1;
    auto h = [&] { return 0.0 / zero; };
    REQUIRE_THROWS_WITH(h(), Contains("(div, shape (3)") && Contains(here(line3)));
  }
  SECTION("a leaf created with a NaN in it") {
    const int line = __LINE__ + 1;
    auto f = [] { return tg::tensor({1.0, std::nan("")}); };
    REQUIRE_THROWS_WITH(f(), Contains("element 1 of tensor node") && Contains(here(line)));
  }
  SECTION("the backward sweep names the node whose rule produced it") {
    tg::Scalar x = tg::var(0);
    const int line = __LINE__ + 1;
    tg::Scalar y = tg::sqrt(x) * 2.0;
    REQUIRE_THROWS_WITH(y.backward(), Contains("(sqrt, value 0)") && Contains(here(line)));
    tg::Tensor t = tg::tensor({4.0, 0.0}, {.requires_grad = true});
    const int line2 = __LINE__ + 1;
    tg::Tensor s = tg::sum(tg::sqrt(t));
    REQUIRE_THROWS_WITH(s.backward(),
                        Contains("(sqrt, shape (2)) sent it") && Contains(here(line2)));
  }
  SECTION("a loss from the nn module names the caller's line") {
    tg::Tensor a = tg::tensor({1e300, 2.0});
    tg::Tensor r = tg::tensor({-1e300, 2.0});
    const int line = __LINE__ + 1;
    auto f = [&] { return tg::nn::mse(a, r); };
    REQUIRE_THROWS_WITH(f(), Contains("(pow, shape (2)") && Contains(here(line)));
  }
}

TEST_CASE("a NaN inside a module names the op in the library and the caller's model(x)",
          "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::nn::MLP model({2, 3, 1}, {.dtype = tg::DType::f64, .seed = 4});
  model.layer(1).weight().set_values(std::vector<double>{1.0, std::nan(""), 0.5});
  tg::Tensor x = tg::tensor({{0.5, -0.25}});
  tg::DetectAnomaly on;
  const int line = __LINE__ + 1;
  auto f = [&] { return model(x); };
  REQUIRE_THROWS_WITH(
      f(), Contains("'layer1.weight' (parameter, shape (1x3), float64), in scope 'layer1'") &&
               Contains("module.cpp:") && Contains("tapegrad::nn::Linear::forward") &&
               Contains(", called from ") && Contains(here(line)));
}

TEST_CASE("CallSite: the outermost one names the nodes, and it ends with its scope", "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Tensor x = tg::tensor({1.0, 2.0});
  auto block = [](const tg::Tensor& v, tg::Site where = tg::Site::current()) {
    tg::CallSite inner(v.tape(), where);
    return tg::exp(v);
  };
  tg::Tensor y;
  const int outer_line = __LINE__ + 1;
  const tg::Site outer = tg::Site::current();
  {
    tg::CallSite site(tape, outer);
    y = block(x);
  }
  const std::string o = tape.origin(tg::NodeKind::tensor, y.index());
  CHECK_THAT(o,
             Contains("created at ") && Contains(", called from ") && Contains(here(outer_line)));
  tg::Tensor z = block(x);
  const int line = __LINE__ - 1;
  CHECK_THAT(tape.origin(tg::NodeKind::tensor, z.index()),
             Contains(", called from ") && Contains(here(line)));
  tg::Tensor w = tg::exp(x);
  CHECK_THAT(tape.origin(tg::NodeKind::tensor, w.index()), !Contains("called from"));
  CHECK(tape.call_site().line() == 0);
}

TEST_CASE("scalar sites are kept only under anomaly detection and dropped with their nodes",
          "[anomaly]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar a = tg::var(1);
  CHECK(tape.scalar_site(a.index()).line() == 0);  // recorded with detection off
  const tg::Mark m = tape.mark();
  {
    tg::DetectAnomaly on;
    tg::Scalar b = tg::exp(a);
    CHECK(tape.scalar_site(b.index()).line() == static_cast<unsigned>(__LINE__ - 1));
  }
  tape.rewind(m);
  tg::Scalar c = tg::exp(a);  // reuses the rewound index, recorded without detection
  CHECK(tape.scalar_site(c.index()).line() == 0);
  // A graph recorded without detection and swept with it: no site, still named.
  tg::Scalar x = tg::var(0);
  tg::Scalar y = tg::sqrt(x);
  tg::DetectAnomaly on;
  REQUIRE_THROWS_WITH(y.backward(),
                      Contains("(sqrt, value 0) sent it to node") && !Contains("created at"));
}
