// Plain numbers kept on nodes, and record once / replay many: replayed values
// and gradients equal a fresh recording's bit for bit, routers re-decide, and
// a flipped comparison is reported with its line, never a wrong gradient.
#include <tapegrad/inspect.hpp>

#include <cmath>
#include <random>

#include "helpers.hpp"

namespace {

// Every scalar op, numbers on both sides, two routers and a shared input.
tg::Scalar all_ops(std::span<const tg::Scalar> in) {
  const tg::Scalar &x = in[0], &y = in[1], &z = in[2];
  tg::Scalar a = x * y + 2.0 * z - y / 3.0;
  tg::Scalar b = 1.5 - tg::tanh(a) + tg::sigmoid(z) * tg::exp(x / 4.0);
  tg::Scalar c = tg::pow(tg::abs(b) + 0.5, 1.7) + tg::pow(1.3, y) + tg::pow(tg::abs(x) + 1.0, z);
  tg::Scalar d = tg::max(c, x) + tg::min(0.2, y) + tg::relu(z - 0.1) + tg::max(2.0, b);
  tg::Scalar e = tg::log(tg::sqrt(d * d + 1.0)) - (-x) / (y * y + 1.0) + 4.0 / (z * z + 2.0);
  return e * x + tg::min(e, y - 1.0) + (2.0 - e) * 0.25;
}

struct Fresh {
  double value;
  std::vector<double> grad;
  std::size_t nodes;
};
Fresh fresh(std::span<const double> x) {
  tg::Tape tape;
  std::vector<tg::Scalar> in;
  for (double v : x) in.push_back(tape.variable(v));
  tg::Scalar f = all_ops(in);
  tape.backward(f);
  Fresh out{f.value(), {}, tape.scalar_count()};
  for (auto& s : in) out.grad.push_back(s.grad());
  return out;
}

}  // namespace

TEST_CASE("a plain number beside a Scalar records one node and keeps the number", "[replay]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(2).named("x");
  const std::size_t before = tape.scalar_count();
  tg::Scalar f = x * 3.0;
  CHECK(tape.scalar_count() == before + 1);
  tg::Scalar g = 1.0 - f;                // {a = sink: 1, b = f}
  tg::Scalar h = tg::pow(g, 2.0) / 4.0;  // two nodes
  tg::Scalar k = 10.0 / (h + 1.0);       // two nodes
  CHECK(tape.scalar_count() == before + 6);
  // k = 10 / ((1 - 3x)^2 / 4 + 1); dk/dx = -10 / (u)^2 * (2 (1 - 3x) (-3) / 4)
  const double u = 25.0 / 4 + 1;
  CHECK(k.value() == Approx(10.0 / u).epsilon(1e-15));
  k.backward();
  CHECK(x.grad() == Approx(-10.0 / (u * u) * (2 * (1 - 6.0) * -3.0 / 4)).epsilon(1e-14));
  // The numbers are on the nodes for everyone who reads the tape.
  CHECK(tape.scalar_operand(g.index(), 0) == 1.0);
  CHECK(tape.scalar_operand(f.index(), 1) == 3.0);
  const std::string t = tg::trace(k);
  INFO(t);
  CHECK(t.find("= 1 - s") != std::string::npos);
  CHECK(t.find("× 3") != std::string::npos);
  CHECK(t.find("10 / s") != std::string::npos);
  CHECK(t.find("= s3 ^ 2 = 25") != std::string::npos);
  const std::string dot = tg::to_dot(k);
  CHECK(dot.find("mul(·, 3)") != std::string::npos);
  CHECK(dot.find("div(10, ·)") != std::string::npos);
  CHECK(dot.find("sink") == std::string::npos);  // no edge from the sink
  // And the per-node check sees each op's partials at the right operand.
  const tg::NodeCheckResult nc = tg::check_nodes(k);
  INFO(nc.str());
  CHECK(nc.pass);
  CHECK(nc.nodes.size() == 6);  // the six ops; no node for any number
}

TEST_CASE("number forms of every binary op match finite differences", "[replay]") {
  using F = tg::Scalar (*)(const tg::Scalar&);
  const F forms[] = {
      [](const tg::Scalar& x) { return x + 0.7; },
      [](const tg::Scalar& x) { return 0.7 + x; },
      [](const tg::Scalar& x) { return x - 0.7; },
      [](const tg::Scalar& x) { return 0.7 - x; },
      [](const tg::Scalar& x) { return x * 0.7; },
      [](const tg::Scalar& x) { return 0.7 * x; },
      [](const tg::Scalar& x) { return x / 0.7; },
      [](const tg::Scalar& x) { return 0.7 / x; },
      [](const tg::Scalar& x) { return tg::pow(x, 2.5); },
      [](const tg::Scalar& x) { return tg::pow(2.5, x); },
      [](const tg::Scalar& x) { return tg::max(x, 0.7); },
      [](const tg::Scalar& x) { return tg::max(0.7, x); },
      [](const tg::Scalar& x) { return tg::min(x, 0.7); },
      [](const tg::Scalar& x) { return tg::min(0.7, x); },
  };
  for (double x0 : {0.4, 1.3}) {
    for (std::size_t k = 0; k < std::size(forms); ++k) {
      tg::Tape tape;
      tg::Scalar x = tape.variable(x0);
      tg::Scalar f = forms[k](x);
      tape.backward(f);
      const double h = 1e-6;
      const auto at = [&](double v) {
        tg::Tape t2;
        return forms[k](t2.variable(v)).value();
      };
      INFO("form " << k << " at " << x0);
      CHECK(x.grad() == Approx((at(x0 + h) - at(x0 - h)) / (2 * h)).margin(1e-8));
    }
  }
}

TEST_CASE("replay gives a fresh recording's value and gradient bit for bit", "[replay]") {
  const std::vector<double> x0{0.3, -1.2, 0.8};
  tg::Function fn = tg::Function::record(x0, all_ops);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-2, 2);
  std::vector<double> g(3);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<double> x{u(rng), u(rng), u(rng)};
    const Fresh want = fresh(x);
    const double v = fn.gradient(x, g);
    INFO("trial " << trial);
    CHECK(v == want.value);
    CHECK(g == want.grad);
    CHECK(fn.value(x) == want.value);
  }
  // Back at the recorded point, the tape is what recording left.
  const Fresh want = fresh(x0);
  CHECK(fn.gradient(x0, g) == want.value);
  CHECK(g == want.grad);
  CHECK(fn.tape().scalar_count() == want.nodes);
}

TEST_CASE("routers re-decide on every replay", "[replay]") {
  tg::Function fn = tg::Function::record(std::vector<double>{1.0, 2.0}, [](auto in) {
    return tg::max(in[0], in[1]) * 3.0 + tg::relu(in[0]) + tg::abs(in[1]);
  });
  std::vector<double> g(2);
  CHECK(fn.gradient(std::vector<double>{1.0, 2.0}, g) == 9.0);
  CHECK(g == std::vector<double>{1.0, 4.0});
  CHECK(fn.gradient(std::vector<double>{5.0, -2.0}, g) == 22.0);  // max takes x; y < 0
  CHECK(g == std::vector<double>{4.0, -1.0});
  CHECK(fn.gradient(std::vector<double>{-3.0, -4.0}, g) == -5.0);  // relu blocks
  CHECK(g == std::vector<double>{3.0, -1.0});
}

TEST_CASE("a flipped comparison is reported with its line, never a wrong gradient", "[replay]") {
  int line = 0;
  tg::Function fn = tg::Function::record(std::vector<double>{1.0, 2.0}, [&](auto in) {
    const tg::Scalar &x = in[0], &y = in[1];
    line = __LINE__ + 1;
    if (x < y) return x * y;
    return x + y;
  });
  std::vector<double> g(2);
  CHECK(fn.gradient(std::vector<double>{3.0, 4.0}, g) == 12.0);  // same branch
  CHECK(g == std::vector<double>{4.0, 3.0});
  try {
    fn.gradient(std::vector<double>{5.0, 4.0}, g);
    FAIL("no BranchChanged");
  } catch (const tg::BranchChanged& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("s1 < s2") != std::string::npos);
    CHECK(m.find("test_replay.cpp:" + std::to_string(line)) != std::string::npos);
    CHECK(m.find("was true when the tape was recorded and is false now (5 < 4)") !=
          std::string::npos);
    CHECK(e.comparison().how == tg::Compare::lt);
    CHECK(e.comparison().site.line() == static_cast<unsigned>(line));
  }
  CHECK_THROWS_AS(fn.value(std::vector<double>{5.0, 4.0}), tg::BranchChanged);
  // The status form reports without throwing.
  double v = 0;
  const tg::ReplayStatus st = fn.try_gradient(std::vector<double>{5.0, 4.0}, g, &v);
  CHECK_FALSE(st.ok());
  CHECK(st.flipped == 1);
  // Comparisons with numbers, both ways round, each kind.
  tg::Tape tape;
  tg::Scalar x = tape.variable(1.0);
  CHECK((x < 2.0));
  CHECK((2.0 > x));
  CHECK((x <= 1.0));
  CHECK((x >= 1.0));
  CHECK((x == 1.0));
  CHECK_FALSE((x != 1.0));
  CHECK(tape.compares().size() == 6);
  tape.set_scalar_value(x.index(), 1.5);
  const tg::ReplayStatus s2 = tape.replay();
  CHECK(s2.flipped == 3);  // <= 1, == 1 and != 1 flip; < 2 and > hold, >= holds
  CHECK(s2.first == 2);
  CHECK(s2.describe(tape).find("s1 <= 1") != std::string::npos);
}

TEST_CASE("replay covers tensor ops and item()", "[replay]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const auto x0 = sample(6, 1), w0 = sample(12, 2), x1 = sample(6, 3);
  tg::Tensor x = tg::tensor(x0, {2, 3}, {.dtype = tg::DType::f64});
  tg::Tensor w = tg::tensor(w0, {3, 4}, {.dtype = tg::DType::f64, .requires_grad = true});
  tg::Scalar s = tg::var(0.5);
  tg::Tensor h = tg::relu(tg::matmul(x, w)) * s;
  tg::Scalar loss = tg::sum(tg::tanh(h)).item() * s + 1.0;
  // Replay at new data, then sweep.
  std::copy(x1.begin(), x1.end(), x.mutable_data<double>().begin());
  REQUIRE(tape.replay().ok());
  tape.zero_grad();
  tape.backward(loss);
  const double v = loss.value(), gs = s.grad();
  const std::vector<double> gw = w.grads();
  // A fresh recording at the new data.
  tg::Tape t2;
  tg::TapeScope scope2(t2);
  tg::Tensor x2 = tg::tensor(x1, {2, 3}, {.dtype = tg::DType::f64});
  tg::Tensor w2 = tg::tensor(w0, {3, 4}, {.dtype = tg::DType::f64, .requires_grad = true});
  tg::Scalar s2 = tg::var(0.5);
  tg::Scalar l2 = tg::sum(tg::tanh(tg::relu(tg::matmul(x2, w2)) * s2)).item() * s2 + 1.0;
  l2.backward();
  CHECK(v == l2.value());
  CHECK(gs == s2.grad());
  CHECK(gw == w2.grads());
}

TEST_CASE("replay works with anomaly detection and names the node", "[replay]") {
  tg::Tape tape;
  tg::Scalar x = tape.variable(2.0);
  tg::Function fn(tape, {x}, tg::log(x) * 2.0);
  std::vector<double> g(1);
  CHECK(fn.gradient(std::vector<double>{4.0}, g) == Approx(2 * std::log(4.0)));
  tg::DetectAnomaly on(tape);
  try {
    fn.gradient(std::vector<double>{-1.0}, g);
    FAIL("no anomaly");
  } catch (const tg::Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("NaN in the forward sweep: scalar node s2 (log)") != std::string::npos);
  }
}

TEST_CASE("Function rejects bad inputs with clear errors", "[replay]") {
  tg::Tape tape;
  tg::Scalar x = tape.variable(1.0), y = tape.variable(2.0);
  tg::Scalar f = x * y;
  CHECK_THROWS_WITH(tg::Function(tape, {f}, f),
                    Catch::Contains("input 0 (s3) is a 'mul' node; inputs must be variables"));
  tg::Function fn(tape, {x, y}, f);
  std::vector<double> g(2);
  CHECK_THROWS_WITH(fn.gradient(std::vector<double>{1.0}, g),
                    Catch::Contains("1 values given for 2 inputs"));
  std::vector<double> g1(1);
  CHECK_THROWS_WITH(fn.gradient(std::vector<double>{1.0, 2.0}, g1),
                    Catch::Contains("room for 1 gradient entries given for 2 inputs"));
  tape.clear();
  CHECK_THROWS_WITH(fn.gradient(std::vector<double>{1.0, 2.0}, g), Catch::Contains("stale"));
  tg::Tape other;
  tg::Scalar y2 = tape.variable(1.0);
  CHECK_THROWS_WITH(tg::Function(other, {other.variable(1)}, y2 * 2.0),
                    Catch::Contains("output lives on another tape"));
}

namespace {
// A random graph over three inputs: every op, numbers on either side, fan-out,
// nodes that do not reach the output, and subgraphs no input reaches (a fixed
// variable and constants).
tg::Scalar random_graph(std::span<const tg::Scalar> in, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  tg::Tape& tape = in[0].tape();
  std::vector<tg::Scalar> pool(in.begin(), in.end());
  pool.push_back(tape.variable(0.75));  // not an input: folded
  pool.push_back(tape.constant(-0.5));
  const auto pick = [&] {
    // Mostly recent values (long single-use chains), sometimes any.
    const std::size_t n = pool.size();
    return pool[rng() % 4 == 0 ? rng() % n : n - 1 - rng() % std::min<std::size_t>(n, 3)];
  };
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  for (int k = 0; k < 120; ++k) {
    const tg::Scalar a = pick(), b = pick();
    const double c = u(rng);
    tg::Scalar r;
    switch (rng() % 16) {
      case 0:
        r = a + b;
        break;
      case 1:
        r = a - c;
        break;
      case 2:
        r = a * b;
        break;
      case 3:
        r = c * a;
        break;
      case 4:
        r = a / (b * b + 1.0);
        break;
      case 5:
        r = c / (a * a + 2.0);
        break;
      case 6:
        r = tg::tanh(a);
        break;
      case 7:
        r = tg::sigmoid(a) * 2.0;
        break;
      case 8:
        r = tg::max(a, b);
        break;
      case 9:
        r = tg::min(c, a);
        break;
      case 10:
        r = tg::relu(a) + tg::abs(b);
        break;
      case 11:
        r = tg::exp(tg::tanh(a));
        break;
      case 12:
        r = tg::log(a * a + 1.0);
        break;
      case 13:
        r = tg::sqrt(b * b + 0.5);
        break;
      case 14:
        r = tg::pow(tg::abs(a) + 0.5, 1.5);
        break;
      default:
        r = -a + 1.25;
        break;
    }
    pool.push_back(r);
  }
  tg::Scalar out = pool.back();
  for (int k = 0; k < 6; ++k) out = out + pool[pool.size() - 10 - static_cast<std::size_t>(k) * 7];
  return out;
}
void require_near(double got, double want) {
  INFO("got " << got << ", want " << want);
  REQUIRE(std::abs(got - want) <= 1e-12 * (1 + std::abs(want)));
}
}  // namespace

TEST_CASE("the optimised program gives the replay's values and gradients", "[replay]") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-2, 2);
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const std::vector<double> x0{u(rng), u(rng), u(rng)};
    const auto f = [&](auto in) { return random_graph(in, seed); };
    tg::Function plain = tg::Function::record(x0, f);
    tg::Function fast = tg::Function::record(x0, f);
    const tg::OptimizeStats st = fast.optimize();
    CHECK(fast.optimized());
    CHECK(st.ops + st.dead + st.folded + st.merged == st.recorded);
    CHECK(st.statements <= st.ops);
    std::vector<double> g1(3), g2(3);
    for (int trial = 0; trial < 5; ++trial) {
      const std::vector<double> x = trial == 0 ? x0 : std::vector<double>{u(rng), u(rng), u(rng)};
      INFO("seed " << seed << " trial " << trial);
      const double v1 = plain.gradient(x, g1), v2 = fast.gradient(x, g2);
      require_near(v2, v1);
      for (int k = 0; k < 3; ++k) require_near(g2[k], g1[k]);
      CHECK(fast.value(x) == v2);
    }
  }
  // Every op, each at many points.
  tg::Function plain = tg::Function::record(std::vector<double>{0.3, -1.2, 0.8}, all_ops);
  tg::Function fast = tg::Function::record(std::vector<double>{0.3, -1.2, 0.8}, all_ops);
  const tg::OptimizeStats st = fast.optimize();
  CHECK(st.statements < st.ops);  // chains were preaccumulated
  std::vector<double> g1(3), g2(3);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<double> x{u(rng), u(rng), u(rng)};
    require_near(fast.gradient(x, g2), plain.gradient(x, g1));
    for (int k = 0; k < 3; ++k) require_near(g2[k], g1[k]);
  }
}

TEST_CASE("optimize drops dead nodes, folds fixed ones, and splits long chains", "[replay]") {
  tg::Tape tape;
  tg::Scalar x = tape.variable(0.5), y = tape.variable(2.0), k = tape.variable(3.0);
  tg::Scalar dead = tg::exp(x) * y;  // never used
  (void)dead;
  tg::Scalar fixed = tg::tanh(k) * 2.0 + 1.0;  // no input reaches it: three ops
  tg::Scalar acc = x;
  for (int i = 0; i < 200; ++i) acc = acc * 0.99 + y;  // single-use chain of 400 ops
  tg::Scalar out = acc * fixed;
  tg::Function plain(tape, {x, y}, out);
  tg::Function fast(tape, {x, y}, out);
  const tg::OptimizeStats st = fast.optimize();
  CHECK(st.dead == 2);
  CHECK(st.folded == 3);
  CHECK(st.ops == 401);
  CHECK(st.statements >= 401 / 64);
  CHECK(st.statements < 20);
  std::vector<double> g1(2), g2(2);
  const std::vector<double> at{0.25, -1.0};
  require_near(fast.gradient(at, g2), plain.gradient(at, g1));
  require_near(g2[0], g1[0]);
  require_near(g2[1], g1[1]);
}

TEST_CASE("an optimised function still reports a flipped comparison", "[replay]") {
  tg::Function fn = tg::Function::record(std::vector<double>{0.5, 2.0}, [](auto in) {
    return in[0] * 2.0 < in[1] ? in[0] * in[1] : in[0] + in[1];
  });
  CHECK(fn.optimize().comparisons == 1);
  std::vector<double> g(2);
  CHECK(fn.gradient(std::vector<double>{0.5, 4.0}, g) == 2.0);
  CHECK(g == std::vector<double>{4.0, 0.5});
  CHECK_THROWS_WITH(fn.gradient(std::vector<double>{3.0, 4.0}, g),
                    Catch::Contains("is false now (6 < 4)"));
  // A tensor tape is replayed, not compiled.
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar s = tg::var(1.0);
  tg::Scalar f = tg::sum(tg::tensor({1.0, 2.0}, {2}) * s).item();
  tg::Function tf(tape, {s}, f);
  CHECK_THROWS_WITH(
      tf.optimize(),
      Catch::Contains("the function reads 4 tensor nodes; the optimiser compiles pure scalar"));
}
