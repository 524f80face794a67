// Vector functions (vector_function.hpp) and sparse derivatives
// (sparse.hpp): values and every derivative against central differences
// and against each other, patterns that never miss a nonzero on random
// graphs, colorings that are valid, the same results from two threads.
#include <cmath>
#include <random>
#include <set>
#include <thread>

#include "helpers.hpp"

namespace {

// A random function of n inputs with m outputs: each op reads one or two
// of the last `window` values (so the derivatives are sparse), with the
// numbers kept bounded.
struct RandomGraph {
  std::size_t n, m;
  std::uint64_t seed;
  std::size_t ops = 60, window = 6;

  std::vector<tg::Scalar> operator()(std::span<const tg::Scalar> x) const {
    std::mt19937_64 rng(seed);
    std::vector<tg::Scalar> v(x.begin(), x.end());
    const auto pick = [&] {
      const std::size_t lo = v.size() > window ? v.size() - window : 0;
      return v[lo + rng() % (v.size() - lo)];
    };
    for (std::size_t k = 0; k < ops; ++k) {
      const tg::Scalar a = pick(), b = pick();
      switch (rng() % 12) {
        case 0:
          v.push_back(a + b);
          break;
        case 1:
          v.push_back(a - 2.0 * b);
          break;
        case 2:
          v.push_back(tg::tanh(a) * b);
          break;
        case 3:
          v.push_back(a / (1.5 + tg::sin(b)));
          break;
        case 4:
          v.push_back(tg::sin(a));
          break;
        case 5:
          v.push_back(tg::exp(0.3 * tg::tanh(a)));
          break;
        case 6:
          v.push_back(tg::hypot(a, b) + 0.5);
          break;
        case 7:
          v.push_back(tg::atan2(a, 2.0 + tg::tanh(b)));
          break;
        case 8:
          v.push_back(tg::sqrt(1.0 + a * a));
          break;
        case 9:
          v.push_back(3.0 * a + 1.0);
          break;
        case 10:
          v.push_back(tg::max(a, b) * a);
          break;
        default:
          v.push_back(tg::tanh(a * b));
          break;
      }
    }
    // Outputs: m values spread over the graph, inputs excluded.
    std::vector<tg::Scalar> out;
    for (std::size_t r = 0; r < m; ++r) out.push_back(v[n + (r * 7919 + seed) % (v.size() - n)]);
    return out;
  }
};

std::vector<double> point(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  std::vector<double> x(n);
  for (double& v : x) v = u(rng);
  return x;
}

// Central differences of F's outputs, dense row-major m x n.
std::vector<double> fd_jacobian(const tg::VectorFunction& F, std::vector<double> x) {
  const std::size_t n = F.inputs(), m = F.outputs();
  std::vector<double> J(m * n), up(m), down(m);
  const double h = 1e-6;
  for (std::size_t c = 0; c < n; ++c) {
    const double at = x[c];
    x[c] = at + h, F.values(x, up);
    x[c] = at - h, F.values(x, down);
    x[c] = at;
    for (std::size_t r = 0; r < m; ++r) J[r * n + c] = (up[r] - down[r]) / (2 * h);
  }
  return J;
}

void require_near(std::span<const double> got, std::span<const double> want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("entry " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}

// Every path a-b-c-d on four distinct vertices uses at least three colors.
bool star_by_brute_force(const tg::SparsityPattern& p, const tg::Coloring& col) {
  const auto nb = [&](std::uint32_t v) {
    return std::vector<std::uint32_t>(p.col.begin() + p.row_start[v],
                                      p.col.begin() + p.row_start[v + 1]);
  };
  const auto& c = col.color;
  for (std::uint32_t a = 0; a < p.rows; ++a)
    for (std::uint32_t b : nb(a)) {
      if (b == a) continue;
      if (c[a] == c[b]) return false;
      for (std::uint32_t d3 : nb(b)) {
        if (d3 == a || d3 == b) continue;
        for (std::uint32_t d4 : nb(d3))
          if (d4 != a && d4 != b && d4 != d3 && c[a] == c[d3] && c[b] == c[d4]) return false;
      }
    }
  return true;
}

}  // namespace

TEST_CASE("a vector function's values and derivatives match central differences", "[sparse]") {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
    const RandomGraph G{12, 5, seed};
    const std::vector<double> x0 = point(12, seed);
    const tg::VectorFunction F = tg::VectorFunction::record(x0, G);
    REQUIRE(F.inputs() == 12);
    REQUIRE(F.outputs() == 5);
    const std::vector<double> x = point(12, seed + 100);
    // Values by replay equal values recorded at x.
    std::vector<double> y(5), y_rec(5);
    F.values(x, y);
    tg::VectorFunction::record(x, [&](auto in) {
      const auto out = G(in);
      for (std::size_t r = 0; r < 5; ++r) y_rec[r] = out[r].value();
      return out;
    });
    CHECK(y == y_rec);
    std::vector<double> J(60), fd = fd_jacobian(F, x);
    F.jacobian(x, J);
    require_near(J, fd, 1e-6);
    // J v and u^T J agree with J.
    const std::vector<double> v = point(12, seed + 7), u = point(5, seed + 9);
    std::vector<double> jv(5), uj(12);
    F.jvp(x, v, jv);
    F.vjp(x, u, uj);
    for (std::size_t r = 0; r < 5; ++r) {
      double want = 0;
      for (std::size_t c = 0; c < 12; ++c) want += J[r * 12 + c] * v[c];
      CHECK(jv[r] == Approx(want).margin(1e-12));
    }
    for (std::size_t c = 0; c < 12; ++c) {
      double want = 0;
      for (std::size_t r = 0; r < 5; ++r) want += u[r] * J[r * 12 + c];
      CHECK(uj[c] == Approx(want).margin(1e-12));
    }
    // The Hessian of u^T F against central differences of its gradient.
    std::vector<double> H(144), g_up(12), g_down(12), xs = x;
    F.hessian(x, u, H);
    for (std::size_t c = 0; c < 12; ++c) {
      xs[c] = x[c] + 1e-5, F.vjp(xs, u, g_up);
      xs[c] = x[c] - 1e-5, F.vjp(xs, u, g_down);
      xs[c] = x[c];
      for (std::size_t r = 0; r < 12; ++r)
        CHECK(H[r * 12 + c] == Approx((g_up[r] - g_down[r]) / 2e-5).margin(1e-5));
    }
    std::vector<double> hv(12), grad(12);
    F.hvp(x, u, v, hv, grad);
    require_near(grad, uj, 1e-13);
    for (std::size_t r = 0; r < 12; ++r) {
      double want = 0;
      for (std::size_t c = 0; c < 12; ++c) want += H[r * 12 + c] * v[c];
      CHECK(hv[r] == Approx(want).margin(1e-11));
    }
  }
}

TEST_CASE("the dense Jacobian is the same by forward and by reverse sweeps", "[sparse]") {
  // Wide (reverse) and tall (forward) shapes of one graph.
  const RandomGraph wide{40, 3, 11, 200}, tall{3, 40, 12, 200};
  for (const RandomGraph& G : {wide, tall}) {
    const tg::VectorFunction F = tg::VectorFunction::record(point(G.n, 5), G);
    const std::vector<double> x = point(G.n, 6);
    std::vector<double> J(G.n * G.m);
    F.jacobian(x, J);
    require_near(J, fd_jacobian(F, x), 1e-6);
  }
}

TEST_CASE("sparsity patterns never miss a nonzero; sparse values equal dense ones", "[sparse]") {
  for (std::uint64_t seed = 20; seed < 32; ++seed) {
    const RandomGraph G{30, 20, seed, 150, 8};
    const tg::VectorFunction F = tg::VectorFunction::record(point(30, seed), G);
    const tg::SparseJacobian SJ(F);
    const tg::SparseHessian SH(F);
    const tg::SparsityPattern& jp = SJ.pattern();
    REQUIRE(jp.rows == 20);
    REQUIRE(jp.cols == 30);
    // Column (or row) groups share no row (or column).
    const tg::SparsityPattern side = SJ.by_rows() ? jp.transposed() : jp;
    for (std::uint32_t r = 0; r < side.rows; ++r) {
      std::set<std::uint32_t> seen;
      for (std::uint32_t k = side.row_start[r]; k < side.row_start[r + 1]; ++k)
        CHECK(seen.insert(SJ.coloring().color[side.col[k]]).second);
    }
    CHECK(tg::recoverable(SH.pattern(), SH.coloring()));
    CHECK(star_by_brute_force(SH.pattern(), SH.coloring()));
    for (std::uint64_t at = 0; at < 3; ++at) {
      const std::vector<double> x = point(30, seed * 10 + at), w = point(20, seed * 10 + at + 5);
      std::vector<double> J(600), H(900), jv(SJ.nnz()), hv(SH.nnz());
      F.jacobian(x, J);
      F.hessian(x, w, H);
      for (std::uint32_t r = 0; r < 20; ++r)
        for (std::uint32_t c = 0; c < 30; ++c)
          if (J[r * 30 + c] != 0.0) CHECK(jp.contains(r, c));
      for (std::uint32_t r = 0; r < 30; ++r)
        for (std::uint32_t c = 0; c < 30; ++c)
          if (H[r * 30 + c] != 0.0) CHECK(SH.pattern().contains(r, c));
      SJ.evaluate(x, jv);
      for (std::size_t k = 0; k < jv.size(); ++k)
        CHECK(jv[k] == Approx(J[SJ.rows()[k] * 30 + SJ.cols()[k]]).margin(1e-13));
      SH.evaluate(x, w, hv);
      for (std::size_t k = 0; k < hv.size(); ++k) {
        REQUIRE(SH.rows()[k] >= SH.cols()[k]);
        CHECK(hv[k] == Approx(H[SH.rows()[k] * 30 + SH.cols()[k]]).margin(1e-12));
      }
    }
  }
}

TEST_CASE("banded and arrowhead structures get the colors their shapes allow", "[sparse]") {
  const std::size_t n = 200;
  // Tridiagonal: F_i = x_{i-1} x_i + sin(x_{i+1}); Jacobian columns in 3
  // groups, Hessian of the sum a star coloring in 3 colors.
  const tg::VectorFunction band = tg::VectorFunction::record(point(n, 1), [&](auto x) {
    std::vector<tg::Scalar> f;
    for (std::size_t i = 0; i < n; ++i) {
      tg::Scalar v = i ? x[i - 1] * x[i] : x[i] * x[i];
      if (i + 1 < n) v = v + tg::sin(x[i + 1]);
      f.push_back(v);
    }
    return f;
  });
  const tg::SparseJacobian bj(band);
  CHECK(bj.nnz() == 3 * n - 2);
  CHECK(bj.colors() == 3);
  const tg::SparseHessian bh(band);
  CHECK(bh.nnz() == 2 * n - 1);  // the diagonal and the first subdiagonal
  CHECK(bh.colors() == 3);
  // Arrowhead: every x_i meets x_0 in one product.
  const tg::VectorFunction arrow = tg::VectorFunction::record(point(n, 2), [&](auto x) {
    tg::Scalar s = 0.0;
    for (std::size_t i = 1; i < n; ++i) s = s + x[0] * x[i] + x[i] * x[i] * x[i];
    return std::vector<tg::Scalar>{s};
  });
  const tg::SparseHessian ah(arrow);
  CHECK(ah.nnz() == 2 * n - 2);  // (i, 0) and (i, i) for i >= 1
  CHECK(ah.colors() == 2);       // x_0 one color, the rest the other
  std::vector<double> x = point(n, 3), hv(ah.nnz()), H(n * n);
  ah.evaluate(x, std::vector<double>{1.0}, hv);
  arrow.hessian(x, std::vector<double>{1.0}, H);
  for (std::size_t k = 0; k < hv.size(); ++k) CHECK(hv[k] == H[ah.rows()[k] * n + ah.cols()[k]]);
  // A dense row (one output of every input) over a banded block: columns
  // would need n colors, rows need 3.
  const tg::VectorFunction mixed = tg::VectorFunction::record(point(n, 4), [&](auto x) {
    std::vector<tg::Scalar> f;
    tg::Scalar s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s = s + x[i];
    f.push_back(s);
    for (std::size_t i = 0; i + 1 < n; ++i) f.push_back(x[i + 1] - x[i] * x[i]);
    return f;
  });
  const tg::SparseJacobian mj(mixed);
  CHECK(mj.by_rows());
  CHECK(mj.colors() <= 3);
  std::vector<double> J(n * n), v(mj.nnz());
  mixed.jacobian(x, J);
  mj.evaluate(x, v);
  for (std::size_t k = 0; k < v.size(); ++k) CHECK(v[k] == J[mj.rows()[k] * n + mj.cols()[k]]);
}

TEST_CASE("star colorings of random symmetric patterns are valid", "[sparse]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const std::uint32_t n = 10 + rng() % 50;
    const double density = 0.02 + 0.2 * (rng() % 100) / 100.0;
    std::vector<std::set<std::uint32_t>> adj(n);
    for (std::uint32_t i = 0; i < n; ++i)
      for (std::uint32_t j = 0; j < i; ++j)
        if ((rng() % 1000) < density * 1000) adj[i].insert(j), adj[j].insert(i);
    if (trial % 3 == 0)  // a hub
      for (std::uint32_t j = 1; j < n; ++j) adj[0].insert(j), adj[j].insert(0);
    tg::SparsityPattern p;
    p.rows = p.cols = n;
    for (std::uint32_t i = 0; i < n; ++i) {
      if (trial % 2) adj[i].insert(i);
      p.col.insert(p.col.end(), adj[i].begin(), adj[i].end());
      p.row_start.push_back(static_cast<std::uint32_t>(p.col.size()));
    }
    const tg::Coloring c = tg::star_coloring(p);
    INFO("trial " << trial << ", n " << n);
    CHECK(star_by_brute_force(p, c));
    CHECK(tg::recoverable(p, c));
  }
}

TEST_CASE("a vector function checks its recorded comparisons", "[sparse]") {
  int line = 0;
  const tg::VectorFunction F =
      tg::VectorFunction::record(std::vector<double>{1.0, 2.0}, [&](auto x) {
        line = __LINE__ + 1;
        if (x[0] * x[1] < 3.0) return std::vector<tg::Scalar>{x[0] + x[1], x[0]};
        return std::vector<tg::Scalar>{x[0] - x[1], x[1]};
      });
  std::vector<double> y(2);
  F.values(std::vector<double>{1.0, 1.0}, y);
  CHECK(y == std::vector<double>{2.0, 1.0});
  try {
    F.values(std::vector<double>{2.0, 2.0}, y);
    FAIL("no BranchChanged");
  } catch (const tg::BranchChanged& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("test_sparse.cpp:" + std::to_string(line)) != std::string::npos);
    CHECK(m.find("was true when the function was recorded and is false now (4 < 3)") !=
          std::string::npos);
  }
}

TEST_CASE("vector functions report bad input clearly", "[sparse]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tape.variable(1.0), y = tape.variable(2.0);
  tg::Scalar z = x * y;
  CHECK_THROWS_WITH(tg::VectorFunction(tape, std::vector<tg::Scalar>{x, z}, std::vector{z}),
                    Catch::Contains("input 1") && Catch::Contains("must be variables"));
  CHECK_THROWS_WITH(tg::VectorFunction(tape, std::vector<tg::Scalar>{x, x}, std::vector{z}),
                    Catch::Contains("given twice"));
  CHECK_THROWS_WITH(tg::VectorFunction(tape, std::vector<tg::Scalar>{x}, std::vector<tg::Scalar>{}),
                    Catch::Contains("no outputs"));
  const tg::VectorFunction F(tape, std::vector<tg::Scalar>{x, y}, std::vector{z, x});
  std::vector<double> out(2), J(3);
  CHECK_THROWS_WITH(F.values(std::vector<double>{1.0}, out),
                    Catch::Contains("values: x has 1 entries, expected 2"));
  CHECK_THROWS_WITH(F.jacobian(std::vector<double>{1.0, 2.0}, J),
                    Catch::Contains("J has 3 entries, expected 4"));
  const tg::SparseJacobian SJ(F);
  std::vector<double> v(2);
  CHECK_THROWS_WITH(SJ.evaluate(std::vector<double>{1.0, 2.0}, v),
                    Catch::Contains("SparseJacobian::evaluate: sizes"));
  // A tensor element after the inputs cannot be replayed.
  tg::Tensor t = tg::tensor({1.0, 2.0}, {.requires_grad = true});
  tg::Scalar e = tg::sum(t).item() * x;
  CHECK_THROWS_WITH(tg::VectorFunction(tape, std::vector<tg::Scalar>{x}, std::vector{e}),
                    Catch::Contains("element of a tensor"));
}

TEST_CASE("one vector function serves two threads at once", "[sparse][threads]") {
  const RandomGraph G{25, 10, 77, 120, 8};
  const tg::VectorFunction F = tg::VectorFunction::record(point(25, 1), G);
  const tg::SparseJacobian SJ(F);
  const tg::SparseHessian SH(F);
  const std::vector<double> w = point(10, 3);
  // Single-threaded answers at 40 points, then the same from two threads.
  std::vector<std::vector<double>> want(40), got(40);
  const auto work = [&](std::size_t k, std::vector<double>& out) {
    const std::vector<double> x = point(25, 1000 + k);
    std::vector<double> j(SJ.nnz()), h(SH.nnz()), grad(25), y(10);
    for (int rep = 0; rep < 20; ++rep) {
      SJ.evaluate(x, j, y);
      SH.evaluate(x, w, h, grad);
    }
    out = j;
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), grad.begin(), grad.end());
    out.insert(out.end(), y.begin(), y.end());
  };
  for (std::size_t k = 0; k < 40; ++k) work(k, want[k]);
  std::thread a([&] {
    for (std::size_t k = 0; k < 40; k += 2) work(k, got[k]);
  });
  std::thread b([&] {
    for (std::size_t k = 1; k < 40; k += 2) work(k, got[k]);
  });
  a.join();
  b.join();
  for (std::size_t k = 0; k < 40; ++k) CHECK(got[k] == want[k]);
}

TEST_CASE("patterns draw as text and SVG", "[sparse]") {
  const tg::VectorFunction F = tg::VectorFunction::record(point(4, 1), [](auto x) {
    return std::vector<tg::Scalar>{x[0] * x[1], tg::sin(x[2]), x[3] + x[0]};
  });
  const tg::SparsityPattern p = tg::jacobian_pattern(F);
  CHECK(p.to_text() == "##..\n..#.\n#..#\n");
  const std::string svg = tg::jacobian_pattern(F).to_svg();
  CHECK(svg.find("<svg") == 0);
  CHECK(svg.find("3 x 4 pattern, 5 nonzeros") != std::string::npos);
  const tg::SparsityPattern h = tg::hessian_pattern(F);
  CHECK(h.to_text() == ".#..\n#...\n..#.\n....\n");
}

TEST_CASE("sparse derivatives outlive a move of their function", "[sparse]") {
  tg::VectorFunction F = tg::VectorFunction::record(point(5, 1), [](auto x) {
    return std::vector<tg::Scalar>{x[0] * x[1], tg::sin(x[2]) * x[3], x[4] * x[4]};
  });
  const tg::SparseJacobian SJ(F);
  const tg::SparseHessian SH(F);
  const tg::VectorFunction G = std::move(F);  // the program stays where it was
  const std::vector<double> x = point(5, 2), w{1.0, 2.0, 3.0};
  std::vector<double> J(15), H(25), jv(SJ.nnz()), hv(SH.nnz());
  G.jacobian(x, J);
  G.hessian(x, w, H);
  SJ.evaluate(x, jv);
  SH.evaluate(x, w, hv);
  for (std::size_t k = 0; k < jv.size(); ++k) CHECK(jv[k] == J[SJ.rows()[k] * 5 + SJ.cols()[k]]);
  for (std::size_t k = 0; k < hv.size(); ++k) CHECK(hv[k] == H[SH.rows()[k] * 5 + SH.cols()[k]]);
}
