// tapegrad::gemm's paths where A is the operand with many exact zeros:
// A B (the forward product X W of a layer whose weight is stored (In, Out),
// and an input gradient behind a ReLU) and A^T B (that layer's weight
// gradient X^T G). Each must give the dense product's values, take the dense
// path whenever it does not apply, and give the same bits on any number of
// threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "sparse_checks.hpp"
#include "tapegrad/threads.hpp"

namespace tg = tapegrad;
using sparse_checks::avx512;
using sparse_checks::require_near;

namespace {

// A rows x cols matrix with about `zeros` exact zeros in runs along each row,
// like an image's background; the rest uniform in [-1, 1].
std::vector<float> sparse_matrix(std::int64_t rows, std::int64_t cols, double zeros,
                                 unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_real_distribution<double> p(0.0, 1.0);
  std::vector<float> m(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    bool zero = p(rng) < zeros;
    for (std::int64_t c = 0; c < cols; ++c) {
      if (p(rng) < 0.2) zero = p(rng) < zeros;  // a new run
      m[static_cast<std::size_t>(r * cols + c)] = zero ? 0.0f : u(rng);
    }
  }
  return m;
}
std::vector<float> dense_matrix(std::int64_t rows, std::int64_t cols, unsigned seed) {
  return sparse_matrix(rows, cols, 0.0, seed);
}

// op(A) op(B) in double plus beta c0: A is m x k, or k x m when ta; B is
// k x n, or n x k when tb.
std::vector<double> reference(bool ta, std::int64_t m, std::int64_t n, std::int64_t k,
                              const std::vector<float>& a, const std::vector<float>& b,
                              const std::vector<float>& c0, double beta, bool tb = false) {
  std::vector<double> c(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = beta * c0[static_cast<std::size_t>(i * n + j)];
      for (std::int64_t r = 0; r < k; ++r)
        s += static_cast<double>(a[static_cast<std::size_t>(ta ? r * m + i : i * k + r)]) *
             b[static_cast<std::size_t>(tb ? j * k + r : r * n + j)];
      c[static_cast<std::size_t>(i * n + j)] = s;
    }
  return c;
}

std::vector<float> product(bool ta, std::int64_t m, std::int64_t n, std::int64_t k,
                           const std::vector<float>& a, const std::vector<float>& b,
                           std::vector<float> c, float beta, bool tb = false) {
  tg::gemm(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, beta, c.data(), n);
  return c;
}

// Both betas against the double reference, and the sparse path taken once.
void check_both_betas(bool ta, std::int64_t m, std::int64_t n, std::int64_t k,
                      const std::vector<float>& a, const std::vector<float>& b,
                      const std::vector<float>& c0, bool tb = false) {
  const auto before = tg::sparse_gemm_count();
  SECTION("beta 0 overwrites, even over NaN") {
    const std::vector<float> nan_c(c0.size(), std::nanf(""));
    require_near(product(ta, m, n, k, a, b, nan_c, 0.0f, tb),
                 reference(ta, m, n, k, a, b, c0, 0.0, tb), static_cast<double>(k));
  }
  SECTION("beta 1 adds") {
    require_near(product(ta, m, n, k, a, b, c0, 1.0f, tb),
                 reference(ta, m, n, k, a, b, c0, 1.0, tb), static_cast<double>(k));
  }
  if (avx512())
    CHECK(tg::sparse_gemm_count() == before + 1);
  else
    WARN("built without AVX-512: the sparse path is not compiled in");
}

}  // namespace

TEST_CASE("gemm sums A B over A's nonzeros and matches the dense product", "[gemm][sparse]") {
  tg::set_num_threads(2);
  // m = 63: a last row with no partner; k = 70: the lists' tail; n = 144: a
  // last chunk of columns narrower than the kernel's 128.
  const std::int64_t m = 63, n = 144, k = 150;
  const auto a = sparse_matrix(m, k, 0.6, 1);
  const auto b = dense_matrix(k, n, 2);
  const auto c0 = dense_matrix(m, n, 3);
  check_both_betas(false, m, n, k, a, b, c0);
}

TEST_CASE("gemm sums A B^T over A's nonzeros and matches the dense product", "[gemm][sparse]") {
  tg::set_num_threads(2);
  // C = A B^T with B (n x k): the forward product X W^T of a weight stored
  // (Out, In) behind a ReLU, through a transposed copy of B. n = 144: the
  // threads' column shares are 64 and 80 wide; k = 150: a transpose tail.
  const std::int64_t m = 63, n = 144, k = 150;
  const auto a = sparse_matrix(m, k, 0.6, 17);
  const auto b = dense_matrix(n, k, 18);
  const auto c0 = dense_matrix(m, n, 19);
  check_both_betas(false, m, n, k, a, b, c0, true);
}

TEST_CASE("gemm sums A^T B over A's nonzeros and matches the dense product", "[gemm][sparse]") {
  tg::set_num_threads(2);
  // C = A^T B with A (k x m) the sparse batch: the weight gradient X^T G.
  const std::int64_t m = 160, n = 144, k = 70;
  const auto a = sparse_matrix(k, m, 0.6, 4);
  const auto b = dense_matrix(k, n, 5);
  const auto c0 = dense_matrix(m, n, 6);
  check_both_betas(true, m, n, k, a, b, c0);
}

TEST_CASE("A^T B with both operands sparse skips either one's zeros correctly", "[gemm][sparse]") {
  tg::set_num_threads(2);
  // The weight gradient X^T G of a first layer: the batch and the gradient
  // behind a ReLU are both about half zeros. Whichever operand the path
  // picks, the values are the dense product's.
  const std::int64_t m = 256, n = 128, k = 64;
  for (const auto& [za, zb] : {std::pair{0.5, 0.55}, std::pair{0.55, 0.5}, std::pair{0.4, 0.9}}) {
    INFO("zeros " << za << " and " << zb);
    const auto a = sparse_matrix(k, m, za, 14);
    const auto b = sparse_matrix(k, n, zb, 15);
    const auto c0 = dense_matrix(m, n, 16);
    const auto before = tg::sparse_gemm_count();
    require_near(product(true, m, n, k, a, b, c0, 1.0f), reference(true, m, n, k, a, b, c0, 1.0),
                 k);
    if (avx512()) CHECK(tg::sparse_gemm_count() == before + 1);
  }
}

TEST_CASE("the sparse-A paths give the same bits on one and two threads", "[gemm][sparse]") {
  const std::int64_t rows = 64, in = 784, out = 256;
  const auto x = sparse_matrix(rows, in, 0.5, 7);
  const auto w = dense_matrix(in, out, 8);
  const auto g = dense_matrix(rows, out, 9);
  const std::vector<float> y0(static_cast<std::size_t>(rows * out)),
      dw0(static_cast<std::size_t>(in * out));
  tg::set_num_threads(1);
  const auto y1 = product(false, rows, out, in, x, w, y0, 0.0f);
  const auto dw1 = product(true, in, out, rows, x, g, dw0, 0.0f);
  // A B^T with a sparse A: the gradient behind a ReLU times W^T.
  const auto gs = sparse_matrix(rows, out, 0.5, 20);
  const auto z1 = product(false, rows, in, out, gs, w, std::vector<float>(x.size()), 0.0f, true);
  tg::set_num_threads(2);
  const auto y2 = product(false, rows, out, in, x, w, y0, 0.0f);
  const auto dw2 = product(true, in, out, rows, x, g, dw0, 0.0f);
  const auto z2 = product(false, rows, in, out, gs, w, std::vector<float>(x.size()), 0.0f, true);
  CHECK(y1 == y2);
  CHECK(dw1 == dw2);
  CHECK(z1 == z2);
  require_near(z2, reference(false, rows, in, out, gs, w, std::vector<float>(x.size()), 0.0, true),
               out);
  require_near(y2, reference(false, rows, out, in, x, w, y0, 0.0), in);
  require_near(dw2, reference(true, in, out, rows, x, g, dw0, 0.0), rows);
}

TEST_CASE("gemm takes the dense path when A's sparse path does not apply", "[gemm][sparse]") {
  tg::set_num_threads(2);
  struct Case {
    const char* what;
    bool ta, tb;
    std::int64_t m, n, k;
    double zeros;
  };
  const Case cases[] = {
      {"A B, too few zeros", false, false, 64, 256, 128, 0.1},
      {"A B, n not a multiple of 16", false, false, 64, 250, 128, 0.6},
      {"A B, too little work", false, false, 16, 64, 64, 0.6},
      {"A B, a single row", false, false, 1, 4096, 512, 0.6},
      {"A B^T, fewer rows than pay for the transposed copy", false, true, 16, 256, 512, 0.6},
      {"A B^T, too few zeros", false, true, 64, 256, 128, 0.1},
      {"A^T B, too few zeros", true, false, 256, 128, 64, 0.1},
      {"A^T B, m not a multiple of 16", true, false, 250, 128, 64, 0.6},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const auto a =
        c.ta ? sparse_matrix(c.k, c.m, c.zeros, 10) : sparse_matrix(c.m, c.k, c.zeros, 10);
    const auto b = dense_matrix(c.k, c.n, 11);  // k x n, or n x k read with tb
    const std::vector<float> c0(static_cast<std::size_t>(c.m * c.n));
    const auto before = tg::sparse_gemm_count();
    require_near(product(c.ta, c.m, c.n, c.k, a, b, c0, 0.0f, c.tb),
                 reference(c.ta, c.m, c.n, c.k, a, b, c0, 0.0, c.tb), static_cast<double>(c.k));
    CHECK(tg::sparse_gemm_count() == before);
  }
}

TEST_CASE("A B skips A's zeros even against an infinity in B", "[gemm][sparse]") {
  tg::set_num_threads(2);
  const std::int64_t m = 64, n = 128, k = 256;
  auto a = sparse_matrix(m, k, 0.6, 12);
  auto b = dense_matrix(k, n, 13);
  // Column 5 of A all zero, and an infinity in B's row 5.
  for (std::int64_t r = 0; r < m; ++r) a[static_cast<std::size_t>(r * k + 5)] = 0.0f;
  b[static_cast<std::size_t>(5 * n + 3)] = INFINITY;
  const auto before = tg::sparse_gemm_count();
  const auto c =
      product(false, m, n, k, a, b, std::vector<float>(static_cast<std::size_t>(m * n)), 0.0f);
  if (tg::sparse_gemm_count() == before) {
    WARN("built without AVX-512: the dense product gives NaN here, as BLAS does");
    return;
  }
  CHECK(sparse_checks::nonfinite(c) == 0);
}
