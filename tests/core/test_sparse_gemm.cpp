// tapegrad::gemm's path for A^T B when B has many exact zeros (the weight
// gradient over a batch of images with a black background): it must give the
// dense product's values, take the dense path whenever it does not apply,
// and give the same bits on any number of threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "sparse_checks.hpp"
#include "tapegrad/tapegrad.hpp"
#include "tapegrad/threads.hpp"

namespace tg = tapegrad;
using sparse_checks::avx512;
using sparse_checks::require_near;

namespace {

struct Problem {
  std::int64_t m, n, k;
  std::vector<float> a, b;  // a: k x m, b: k x n
};

// B has about `zeros` exact zeros, in runs along each row like an image's
// background.
Problem make(std::int64_t m, std::int64_t n, std::int64_t k, double zeros, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_real_distribution<double> p(0.0, 1.0);
  Problem q{m, n, k, std::vector<float>(static_cast<std::size_t>(k * m)),
            std::vector<float>(static_cast<std::size_t>(k * n))};
  for (float& v : q.a) v = u(rng);
  for (std::int64_t r = 0; r < k; ++r) {
    bool zero = p(rng) < zeros;
    for (std::int64_t c = 0; c < n; ++c) {
      if (p(rng) < 0.2) zero = p(rng) < zeros;  // a new run
      q.b[static_cast<std::size_t>(r * n + c)] = zero ? 0.0f : u(rng);
    }
  }
  return q;
}

// A^T B in double, plus beta times c0.
std::vector<double> reference(const Problem& q, const std::vector<float>& c0, double beta) {
  std::vector<double> c(static_cast<std::size_t>(q.m * q.n));
  for (std::int64_t i = 0; i < q.m; ++i)
    for (std::int64_t j = 0; j < q.n; ++j) {
      double s = beta * c0[static_cast<std::size_t>(i * q.n + j)];
      for (std::int64_t r = 0; r < q.k; ++r)
        s += static_cast<double>(q.a[static_cast<std::size_t>(r * q.m + i)]) *
             q.b[static_cast<std::size_t>(r * q.n + j)];
      c[static_cast<std::size_t>(i * q.n + j)] = s;
    }
  return c;
}

std::vector<float> product(const Problem& q, std::vector<float> c, float beta) {
  tg::gemm(true, false, q.m, q.n, q.k, 1.0f, q.a.data(), q.m, q.b.data(), q.n, beta, c.data(), q.n);
  return c;
}

}  // namespace

TEST_CASE("gemm sums A^T B over B's nonzeros and matches the dense product", "[gemm][sparse]") {
  tg::set_num_threads(2);
  // k = 70: the pair lists' tail (k not a multiple of 16); m = 144: a last
  // chunk of C's rows narrower than the kernel's 128.
  const Problem q = make(144, 160, 70, 0.6, 1);
  std::vector<float> c0(static_cast<std::size_t>(q.m * q.n));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : c0) v = u(rng);
  const auto before = tg::sparse_gemm_count();
  SECTION("beta 0 overwrites, even over NaN") {
    std::vector<float> nan_c(c0.size(), std::nanf(""));
    require_near(product(q, nan_c, 0.0f), reference(q, c0, 0.0), static_cast<double>(q.k));
  }
  SECTION("beta 1 adds") {
    require_near(product(q, c0, 1.0f), reference(q, c0, 1.0), static_cast<double>(q.k));
  }
  if (avx512())
    CHECK(tg::sparse_gemm_count() == before + 1);
  else
    WARN("built without AVX-512: the sparse path is not compiled in");
}

TEST_CASE("gemm's sparse path gives the same bits on one and two threads", "[gemm][sparse]") {
  const Problem q = make(256, 784, 64, 0.5, 3);
  const std::vector<float> c0(static_cast<std::size_t>(q.m * q.n));
  tg::set_num_threads(1);
  const auto one = product(q, c0, 0.0f);
  tg::set_num_threads(2);
  const auto two = product(q, c0, 0.0f);
  CHECK(one == two);
  require_near(two, reference(q, c0, 0.0), static_cast<double>(q.k));
}

TEST_CASE("gemm takes the dense path when the sparse one does not apply", "[gemm][sparse]") {
  tg::set_num_threads(2);
  struct Case {
    const char* what;
    std::int64_t m, n, k;
    double zeros;
  };
  const Case cases[] = {
      {"too few zeros", 128, 256, 64, 0.1},
      {"m not a multiple of 16", 130, 256, 64, 0.6},
      {"n not a multiple of 16", 128, 250, 64, 0.6},
      {"too little work", 32, 64, 32, 0.6},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const Problem q = make(c.m, c.n, c.k, c.zeros, 4);
    const std::vector<float> c0(static_cast<std::size_t>(q.m * q.n));
    const auto before = tg::sparse_gemm_count();
    require_near(product(q, c0, 0.0f), reference(q, c0, 0.0), static_cast<double>(q.k));
    CHECK(tg::sparse_gemm_count() == before);
  }
}

TEST_CASE("a skipped zero contributes nothing, even against an infinity in A", "[gemm][sparse]") {
  tg::set_num_threads(2);
  Problem q = make(128, 256, 64, 0.6, 5);
  // Put an infinity in A's row r wherever B's row r is zero in column 0.
  std::int64_t r = 0;
  while (q.b[static_cast<std::size_t>(r * q.n)] != 0.0f) ++r;
  for (std::int64_t c = 0; c < q.n; ++c) q.b[static_cast<std::size_t>(r * q.n + c)] = 0.0f;
  q.a[static_cast<std::size_t>(r * q.m)] = INFINITY;
  const auto before = tg::sparse_gemm_count();
  const auto c = product(q, std::vector<float>(static_cast<std::size_t>(q.m * q.n)), 0.0f);
  if (tg::sparse_gemm_count() == before) {
    WARN("built without AVX-512: the dense product gives NaN here, as BLAS does");
    return;
  }
  CHECK(sparse_checks::nonfinite(c) == 0);
}

TEST_CASE("a linear layer's weight gradient over a sparse batch is the dense one",
          "[gemm][sparse][linear]") {
  tg::set_num_threads(2);
  const std::int64_t n = 64, in = 256, out = 128;
  const Problem q = make(out, in, n, 0.55, 6);  // b is the batch x (n x in)
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> w(static_cast<std::size_t>(out * in));
  for (float& v : w) v = u(rng);
  // loss = sum(y * s) with s = a (n x out), so dW = s^T x = A^T B.
  std::vector<float> s(q.a), gw(w.size(), 0.0f);
  std::vector<float> xv(q.b);
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const auto before = tg::sparse_gemm_count();
  const auto x = tg::external({n, in}, tg::DType::f32, xv.data(), nullptr);
  const auto wt = tg::external({out, in}, tg::DType::f32, w.data(), gw.data());
  const auto seed = tg::external({n, out}, tg::DType::f32, s.data(), nullptr);
  tg::sum(tg::linear(x, wt, tg::Tensor()) * seed).backward();
  require_near(gw, reference(q, std::vector<float>(gw.size()), 0.0), static_cast<double>(n));
  if (avx512()) CHECK(tg::sparse_gemm_count() > before);
}
