// The reverse sweep's loop for long recurrences on one parameter (a run of
// nodes each taking the node before as input a and sharing input b), which
// the sweep picks block by block: against closed forms, and against forward
// mode on random graphs where such runs and other nodes alternate.
#include <tapegrad/higher.hpp>

#include <cmath>
#include <random>

#include "helpers.hpp"

TEST_CASE("a product chain: every intermediate adjoint in closed form", "[sweep][chain]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const double xv = 0.7, yv = 1.0001;
  tg::Scalar x = tg::var(xv), y = tg::var(yv);
  const int n = 5000;  // several 1024-node blocks, and a rest
  std::vector<tg::Scalar> acc{x};
  for (int k = 1; k <= n; ++k) acc.push_back(acc.back() * y);  // acc_k = x y^k
  acc.back().backward();
  CHECK(x.grad() == Approx(std::pow(yv, n)).epsilon(1e-12));
  CHECK(y.grad() == Approx(n * xv * std::pow(yv, n - 1)).epsilon(1e-11));
  // d out / d acc_k = y^(n - k), for nodes on both sides of block edges
  for (int k : {0, 1, 2, 500, 1000, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 4999, 5000}) {
    CAPTURE(k);
    CHECK(acc[static_cast<std::size_t>(k)].grad() == Approx(std::pow(yv, n - k)).epsilon(1e-12));
  }
}

TEST_CASE("an add/mul chain on one input: a million shares summed", "[sweep][chain]") {
  const auto record = [](tg::Scalar x, tg::Scalar y) {
    tg::Scalar acc = x;
    for (int k = 0; k < 1'000'000; ++k) acc = (k & 1) ? acc + y : acc * y;
    return acc;
  };
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(0.25), y = tg::var(1.0);
  tg::Scalar out = record(x, y);
  CHECK(out.value() == 0.25 + 500'000);
  const std::vector<double> dy = tg::jvp({out}, {x, y}, std::vector<double>{0.0, 1.0});
  out.backward();
  CHECK(x.grad() == 1.0);  // a product of ones
  // each + y adds 1, each * y adds the sum so far: 500,000 + sum of (0.25 + k)
  const double want = 500'000 + 500'000 * 0.25 + 499'999.0 * 500'000 / 2;
  CHECK(y.grad() == Approx(want).epsilon(1e-12));
  CHECK(dy[0] == Approx(want).epsilon(1e-12));
}

namespace {
// A random graph of runs that chain (acc = acc op p, for one p per run, with
// p sometimes changing inside the run) and stretches of nodes with random
// inputs, over four inputs. Returns the output.
tg::Scalar random_graph(std::mt19937& rng, const std::vector<tg::Scalar>& in) {
  std::vector<tg::Scalar> nodes(in.begin(), in.end());
  const auto pick = [&](std::size_t back) {
    const std::size_t n = nodes.size();
    return nodes[n - 1 - std::uniform_int_distribution<std::size_t>(0, std::min(back, n) - 1)(rng)];
  };
  std::uniform_int_distribution<int> coin(0, 99);
  tg::Scalar acc = in[0];
  for (int part = 0; part < 8; ++part) {
    if (part % 2 == 0) {  // a run of 1,100 to 3,000 chained nodes
      const int len = std::uniform_int_distribution<int>(1100, 3000)(rng);
      tg::Scalar p = in[static_cast<std::size_t>(coin(rng) % 4)];
      for (int k = 0; k < len; ++k) {
        if (coin(rng) == 0) p = pick(50);  // b changes inside the run
        const int op = coin(rng);
        if (op < 45)
          acc = acc + p;
        else if (op < 90)
          acc = acc * (1.0 + 1e-4 * tg::tanh(p));
        else if (op < 97)
          acc = acc - p;
        else
          acc = tg::tanh(acc) * 3.0;
        nodes.push_back(acc);
      }
    } else {  // 50 to 500 nodes on random earlier ones (the node before among them)
      const int len = std::uniform_int_distribution<int>(50, 500)(rng);
      for (int k = 0; k < len; ++k) {
        tg::Scalar a = pick(coin(rng) < 50 ? 1 : 400), b = pick(coin(rng) < 50 ? 1 : 400);
        const int op = coin(rng);
        tg::Scalar r = op < 40 ? a + b : op < 70 ? a * tg::tanh(b) : op < 90 ? a - b : tg::tanh(a);
        nodes.push_back(r);
      }
      acc = acc + nodes.back();
      nodes.push_back(acc);
    }
  }
  return acc;
}
}  // namespace

TEST_CASE("random graphs with long chained runs: the gradient is forward mode's",
          "[sweep][chain]") {
  for (unsigned seed = 1; seed <= 6; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    tg::Tape tape;
    tg::TapeScope scope(tape);
    std::vector<tg::Scalar> in;
    for (double v : {0.3, -0.2, 0.5, 0.1}) in.push_back(tg::var(v));
    tg::Scalar out = random_graph(rng, in);
    REQUIRE(tape.scalar_count() > 5000);
    const std::vector<tg::Ref> refs(in.begin(), in.end());
    std::vector<double> want;
    for (std::size_t j = 0; j < in.size(); ++j) {
      std::vector<double> v(in.size(), 0.0);
      v[j] = 1.0;
      want.push_back(tg::jvp({out}, refs, v)[0]);
    }
    out.backward();
    for (std::size_t j = 0; j < in.size(); ++j) {
      CAPTURE(j);
      CHECK(in[j].grad() == Approx(want[j]).epsilon(1e-10).margin(1e-12));
    }
  }
}
