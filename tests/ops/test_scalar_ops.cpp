// Every scalar op against central finite differences in float64.
#include "helpers.hpp"

namespace {
void check(const tg::ScalarFn& f, std::vector<double> x) {
  const tg::GradcheckResult r = tg::gradcheck(f, x);
  INFO(r.str());
  REQUIRE(r.pass);
}
using S = std::span<const tg::Scalar>;
}  // namespace

TEST_CASE("scalar arithmetic", "[ops][scalar]") {
  for (auto pt : {std::vector<double>{1.3, -0.7}, std::vector<double>{-2.1, 3.4}}) {
    check([](S x) { return x[0] + x[1]; }, pt);
    check([](S x) { return x[0] - x[1]; }, pt);
    check([](S x) { return x[0] * x[1]; }, pt);
    check([](S x) { return x[0] / x[1]; }, pt);
    check([](S x) { return -x[0] * x[1]; }, pt);
    check([](S x) { return 2.5 * x[0] + x[1] / 3.0 - 1.0 + (4.0 - x[0]) + 2.0 / x[1]; }, pt);
    check([](S x) { return tg::max(x[0], x[1]) + tg::min(x[0], x[1]) * 2.0; }, pt);
    check([](S x) { return tg::max(x[0], 0.25) + tg::min(-0.25, x[1]); }, pt);
  }
}

TEST_CASE("scalar functions", "[ops][scalar]") {
  for (double v : {0.3, 1.7, 2.9}) {
    check([](S x) { return tg::exp(x[0]); }, {v});
    check([](S x) { return tg::log(x[0]); }, {v});
    check([](S x) { return tg::sqrt(x[0]); }, {v});
    check([](S x) { return tg::tanh(x[0]); }, {v});
    check([](S x) { return tg::sigmoid(x[0]); }, {v});
    check([](S x) { return tg::sigmoid(-x[0] * 5.0); }, {v});
    check([](S x) { return tg::pow(x[0], 3.0); }, {v});
    check([](S x) { return tg::pow(x[0], -1.5); }, {v});
    check([](S x) { return tg::pow(x[0], x[1]); }, {v, 1.3});
    for (double s : {1.0, -1.0}) {
      check([](S x) { return tg::abs(x[0]); }, {s * v});
      check([](S x) { return tg::relu(x[0]); }, {s * v});
    }
  }
}

TEST_CASE("scalar composite: a two-input neuron with every op", "[ops][scalar]") {
  check(
      [](S x) {
        tg::Scalar h = tg::tanh(x[0] * x[1] + 0.3) + tg::sigmoid(x[1]) * tg::exp(x[0] / 4.0);
        return tg::log(tg::abs(h) + 1.0) + tg::sqrt(tg::relu(h) + 2.0);
      },
      {0.4, -1.2});
}
