// The optimiser's blocks: statements of one shape that do not read each other
// run as one loop per op. Every shape of block below is checked against the
// unoptimised replay (which itself equals a fresh recording, test_replay.cpp)
// and against finite differences, at the recorded point and at new ones.
#include <cmath>
#include <random>

#include "helpers.hpp"

namespace {

void require_near(double got, double want) {
  INFO("got " << got << ", want " << want);
  REQUIRE(std::abs(got - want) <= 1e-12 * (1 + std::abs(want)));
}

// Records f twice at x0, optimises one copy, and compares the two at x0 and
// at `trials` random points near it; returns the optimiser's stats.
template <class F>
tg::OptimizeStats same_as_replay(const std::vector<double>& x0, F f, int trials = 8,
                                 double spread = 0.3) {
  tg::Function plain = tg::Function::record(x0, f);
  tg::Function fast = tg::Function::record(x0, f);
  const tg::OptimizeStats st = fast.optimize();
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-spread, spread);
  std::vector<double> g1(x0.size()), g2(x0.size());
  for (int t = 0; t <= trials; ++t) {
    std::vector<double> x = x0;
    if (t > 0)
      for (double& v : x) v += u(rng);
    INFO("trial " << t);
    const double v1 = plain.gradient(x, g1), v2 = fast.gradient(x, g2);
    require_near(v2, v1);
    for (std::size_t k = 0; k < x.size(); ++k) {
      INFO("input " << k);
      require_near(g2[k], g1[k]);
      REQUIRE(std::isfinite(g2[k]));
    }
    REQUIRE(fast.value(x) == v2);
  }
  return st;
}

// A few steps of the Lax-Wendroff stencil of the benchmarks on n points.
tg::Scalar stencil(std::span<const tg::Scalar> in) {
  std::vector<tg::Scalar> q(in.begin(), in.end()), flux(q.size());
  const std::size_t n = q.size();
  const double c = 0.125;
  for (int step = 0; step < 6; ++step) {
    for (std::size_t i = 0; i + 1 < n; ++i)
      flux[i] = 0.5 * c * (q[i] + q[i + 1] + c * (q[i] - q[i + 1]));
    for (std::size_t i = 1; i + 1 < n; ++i) q[i] += flux[i - 1] - flux[i];
    q[0] = q[n - 2];
    q[n - 1] = q[1];
  }
  tg::Scalar sum = q[0];
  for (std::size_t i = 1; i < n; ++i) sum += q[i] * q[i];
  return 0.1 * sum;
}

std::vector<double> points(std::size_t n, double lo, double hi, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> x(n);
  for (double& v : x) v = u(rng);
  return x;
}

}  // namespace

TEST_CASE("a stencil becomes blocks and keeps the replay's gradient", "[replay][optimize]") {
  const std::vector<double> x0 = points(16, 1.0, 2.0, 3);
  const tg::OptimizeStats st = same_as_replay(x0, stencil);
  // Per step: a block of fluxes and a block of updates, plus the edge
  // statements that took in the single-use end fluxes.
  CHECK(st.blocks < st.statements / 4);
  // The stencil is linear: its blocks' weights are computed once.
  CHECK(st.fixed >= 12);
  // And against central differences.
  tg::Function fn = tg::Function::record(x0, stencil);
  fn.optimize();
  std::vector<double> g(x0.size());
  fn.gradient(x0, g);
  for (std::size_t k = 0; k < x0.size(); ++k) {
    std::vector<double> xp = x0, xm = x0;
    xp[k] += 1e-6, xm[k] -= 1e-6;
    const double fd = (fn.value(xp) - fn.value(xm)) / 2e-6;
    INFO("input " << k);
    CHECK(std::abs(g[k] - fd) <= 1e-7 + 1e-6 * std::abs(fd));
  }
}

TEST_CASE("blocks whose operands are scattered, shared or repeated", "[replay][optimize]") {
  const std::vector<double> x0 = points(12, -1.5, 1.5, 4);
  SECTION("gathered operands: a permutation, and one input in every statement") {
    const auto f = [](std::span<const tg::Scalar> x) {
      static const int perm[12] = {5, 2, 9, 0, 11, 7, 3, 10, 1, 8, 6, 4};
      tg::Scalar s = x[0] * 0.5;
      std::vector<tg::Scalar> y;
      for (int j = 0; j < 12; ++j)
        y.push_back(tg::tanh(x[static_cast<std::size_t>(perm[j])]) * x[3] + 1.0);
      for (const auto& v : y) s = s + v * v;
      return s;
    };
    const tg::OptimizeStats st = same_as_replay(x0, f);
    CHECK(st.blocks < st.statements);
    // Consecutive but for one swap: the slot must not be read as a range.
    const auto g = [](std::span<const tg::Scalar> x) {
      static const int near[12] = {0, 1, 2, 7, 4, 5, 6, 3, 8, 9, 10, 11};
      std::vector<tg::Scalar> y;
      for (int j = 0; j < 12; ++j)
        y.push_back(x[static_cast<std::size_t>(near[j])] *
                    x[static_cast<std::size_t>((j + 5) % 12)]);
      tg::Scalar s = y[0] * y[0];  // every y used twice: one block of 12
      for (std::size_t j = 1; j < 12; ++j) s = s + y[j] * y[j] * static_cast<double>(j);
      return s;
    };
    CHECK(same_as_replay(x0, g).blocks == 2);  // the 12 products, the sum
  }
  SECTION("one operand twice in an op (x * x) and in two ops") {
    const auto f = [](std::span<const tg::Scalar> x) {
      std::vector<tg::Scalar> y;
      for (std::size_t j = 0; j < 12; ++j) y.push_back((x[j] * x[j] + 1.0) * x[j] - tg::exp(x[j]));
      tg::Scalar s = y[0];
      for (std::size_t j = 1; j < 12; ++j) s = s + y[j] * y[j];
      return s;
    };
    const tg::OptimizeStats st = same_as_replay(x0, f);
    CHECK(st.blocks < st.statements);
  }
  SECTION("routers and kinks re-decide per statement") {
    const auto f = [](std::span<const tg::Scalar> x) {
      std::vector<tg::Scalar> y;
      for (std::size_t j = 0; j + 1 < 12; ++j)
        y.push_back(tg::max(x[j], x[j + 1]) + tg::relu(x[j] - 0.2) * tg::abs(x[j + 1]) +
                    tg::min(x[j], 0.3));
      tg::Scalar s = y[0];
      for (std::size_t j = 1; j < y.size(); ++j) s = s + y[j] * y[j];
      return s;
    };
    same_as_replay(x0, f, 40, 1.0);
  }
  SECTION("a zero upstream does not meet an infinite partial") {
    // For x < 0, sqrt(relu(x)) has an infinite partial and its only user
    // multiplies it by relu(x) = 0: the upstream is 0, the product must be
    // 0, not 0 * inf.
    const auto f = [](std::span<const tg::Scalar> x) {
      std::vector<tg::Scalar> r, y;
      for (std::size_t j = 0; j < 12; ++j) r.push_back(tg::relu(x[j]));
      for (std::size_t j = 0; j < 12; ++j) y.push_back(tg::sqrt(r[j]) * r[j]);
      tg::Scalar s = x[0] * 0.5;
      for (std::size_t j = 0; j < 12; ++j) s = s + y[j] * y[j] + y[j];  // y: used twice
      return s;
    };
    std::vector<double> x = x0;
    for (std::size_t j = 0; j < 12; j += 2) x[j] = -1.0;
    const tg::OptimizeStats st = same_as_replay(x, f, 0);
    CHECK(st.blocks < st.statements);
  }
  SECTION("different numbers make different shapes") {
    const auto f = [](std::span<const tg::Scalar> x) {
      tg::Scalar s = x[0];
      for (std::size_t j = 0; j < 12; ++j) s = s + (x[j] * (1.0 + static_cast<double>(j % 3)));
      return s;
    };
    same_as_replay(x0, f);
  }
}

TEST_CASE("equal ops are computed once", "[replay][optimize]") {
  SECTION("the same product both ways round, and a repeated exp") {
    const auto f = [](std::span<const tg::Scalar> x) {
      return x[0] * x[1] + tg::exp(x[2] * 0.5) * (x[1] * x[0]) - tg::exp(x[2] * 0.5);
    };
    const tg::OptimizeStats st = same_as_replay({0.7, -1.1, 0.4}, f);
    CHECK(st.merged == 3);  // x1 * x0, x2 * 0.5, exp
    CHECK(st.ops + st.dead + st.folded + st.merged == st.recorded);
  }
  SECTION("different numbers or different ops stay apart") {
    const auto f = [](std::span<const tg::Scalar> x) {
      return x[0] * 0.5 + x[0] * 0.25 + tg::max(x[0], x[1]) * tg::min(x[0], x[1]) + (x[0] - x[1]) +
             (x[1] - x[0]);
    };
    CHECK(same_as_replay({0.7, -1.1}, f, 20, 2.0).merged == 0);
  }
  SECTION("det by minors: every minor once") {
    // Expansion along the first row recomputes each minor of the lower rows
    // many times: 4! products of entries, but only 2^4 column subsets.
    const auto det = [](std::span<const tg::Scalar> a) {
      const auto rec = [&](auto&& self, int r, unsigned used) -> tg::Scalar {
        if (r == 3)
          for (int c = 0; c < 4; ++c)
            if (!(used >> c & 1u)) return a[static_cast<std::size_t>(r * 4 + c)];
        tg::Scalar sum;
        bool first = true, plus = true;
        for (int c = 0; c < 4; ++c) {
          if (used >> c & 1u) continue;
          tg::Scalar t = a[static_cast<std::size_t>(r * 4 + c)] * self(self, r + 1, used | 1u << c);
          sum = first ? t : (plus ? sum + t : sum - t);
          first = false, plus = !plus;
        }
        return sum;
      };
      return rec(rec, 0, 0);
    };
    const tg::OptimizeStats st = same_as_replay(points(16, 0.0, 1.0, 9), det);
    // Recorded: 7 ops at row 0 (4 products, 3 sums), and under each of its 4
    // terms 5 at row 1 and 3 x 3 at row 2: 7 + 4 (5 + 9) = 63. Distinct:
    // 7, 4 x 5 for the 4 one-column minors, 6 x 3 for the 6 two-column ones.
    CHECK(st.recorded == 63);
    CHECK(st.ops == 7 + 4 * 5 + 6 * 3);
    CHECK(st.merged == 63 - 45);
  }
}

TEST_CASE("a layer's neurons stay whole statements and form blocks", "[replay][optimize]") {
  // 3 inputs, a hidden layer of 8 tanh neurons, one output neuron: the
  // output's single-use tree would swallow the hidden neurons; the join rule
  // keeps each weighted hidden neuron a statement of one shape.
  const auto net = [](std::span<const tg::Scalar> p) {
    const double x[3] = {0.5, -1.25, 2.0};
    std::vector<tg::Scalar> h;
    std::size_t k = 0;
    for (int o = 0; o < 8; ++o, k += 4) {
      tg::Scalar acc = p[k + 3];
      for (std::size_t i = 0; i < 3; ++i) acc = acc + p[k + i] * x[i];
      h.push_back(tg::tanh(acc));
    }
    tg::Scalar out = p[k + 8];
    for (std::size_t i = 0; i < 8; ++i) out = out + p[k + i] * h[i];
    return out * out;
  };
  const tg::OptimizeStats st = same_as_replay(points(41, -1.0, 1.0, 12), net);
  // Hidden neurons 1..7, each weighted by its output weight: one block; the
  // output's sum with neuron 0 inlined, and the square: single statements.
  CHECK(st.blocks == 3);
  CHECK(st.statements == 9);
}

TEST_CASE("chains get their weights by forward mode", "[replay][optimize]") {
  SECTION("the benchmark's add/mul chain, against the replay and differences") {
    const auto f = [](std::span<const tg::Scalar> in) {
      tg::Scalar acc = in[0];
      for (int i = 0; i < 1000; ++i) acc = (i & 1) ? acc + in[1] : acc * in[1];
      return acc;
    };
    const std::vector<double> x0{0.7, 0.9995};
    const tg::OptimizeStats st = same_as_replay(x0, f, 8, 0.0004);
    CHECK(st.statements > 10);
    CHECK(st.chains == st.statements);  // each piece reads the last piece and y
    tg::Function fn = tg::Function::record(x0, f);
    fn.optimize();
    std::vector<double> g(2);
    fn.gradient(x0, g);
    for (std::size_t k = 0; k < 2; ++k) {
      std::vector<double> hi = x0, lo = x0;
      const double h = 1e-6;
      hi[k] += h, lo[k] -= h;
      CHECK(g[k] == Approx((fn.value(hi) - fn.value(lo)) / (2 * h)).epsilon(1e-6));
    }
  }
  SECTION("Horner's rule against the exact derivative") {
    // p(x) = s x^5 + 3 x^4 - 2 x^3 + x^2 + 0.5 x - 1, as acc = acc * x + c.
    const auto f = [](std::span<const tg::Scalar> in) {
      const double c[] = {3, -2, 1, 0.5, -1};
      tg::Scalar acc = in[1];
      for (double ck : c) acc = acc * in[0] + ck;
      return acc;
    };
    const std::vector<double> x0{0.5, 2.0};
    tg::Function fn = tg::Function::record(x0, f);
    const tg::OptimizeStats st = fn.optimize();
    CHECK(st.chains == 1);
    CHECK(st.statements == 1);
    for (const double x : {-1.5, 0.0, 0.5, 2.0}) {
      const double s = 2.0;
      std::vector<double> g(2);
      const std::vector<double> at{x, s};
      const double v = fn.gradient(at, g);
      CHECK(v == Approx(s * std::pow(x, 5) + 3 * std::pow(x, 4) - 2 * std::pow(x, 3) + x * x +
                        0.5 * x - 1));
      CHECK(g[0] == Approx(5 * s * std::pow(x, 4) + 12 * std::pow(x, 3) - 6 * x * x + 2 * x + 0.5)
                        .margin(1e-12));
      CHECK(g[1] == Approx(std::pow(x, 5)).margin(1e-12));
    }
  }
  SECTION("an operand read twice, and a chain of squares") {
    const auto f = [](std::span<const tg::Scalar> in) {
      tg::Scalar acc = in[0];
      for (int i = 0; i < 6; ++i) acc = acc * acc * 0.5 + in[1];
      return acc;
    };
    const tg::OptimizeStats st = same_as_replay({0.8, 0.1}, f, 12, 0.2);
    CHECK(st.chains == st.statements);
  }
  SECTION("an infinite partial whose path is cut by a zero: the local reverse decides") {
    // sqrt at 0 has an infinite partial, and the product by 0 after it cuts
    // its path: d/dx must be 0, as in the plain replay, where forward mode
    // alone would give 0 * inf = NaN.
    const auto f = [](std::span<const tg::Scalar> in) {
      return (tg::sqrt(in[0]) * 0.0 + in[1]) * in[1];
    };
    const std::vector<double> x0{1.0, 3.0}, zero{0.0, 3.0}, quarter{0.25, 3.0};
    tg::Function fn = tg::Function::record(x0, f);
    const tg::OptimizeStats st = fn.optimize();
    CHECK(st.chains == 1);
    std::vector<double> g(2);
    CHECK(fn.gradient(zero, g) == 9.0);
    CHECK(g[0] == 0.0);
    CHECK(g[1] == 6.0);
    CHECK(fn.gradient(quarter, g) == 9.0);  // and the chain path again where it is finite
    CHECK(g[0] == 0.0);
    CHECK(g[1] == 6.0);
  }
  SECTION("three operands are not a chain") {
    const auto f = [](std::span<const tg::Scalar> in) {
      tg::Scalar acc = in[0];
      for (int i = 0; i < 6; ++i) acc = acc * in[1] + in[2];
      return acc;
    };
    const tg::OptimizeStats st = same_as_replay({0.8, 0.9, 0.1}, f);
    CHECK(st.chains == 0);
  }
}
