// Anomaly detection: the first NaN or infinity, forward or backward, throws
// an error naming the node, its op, its shape and the sweep.
#include "helpers.hpp"

using Catch::Matchers::Contains;

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
                                        Contains("created in scope 'layer7'"));
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
