#pragma once
// Checks shared by the tests of tapegrad::gemm's sparse paths.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

namespace sparse_checks {

// The worst difference from a double reference, for sums of k products of
// magnitude <= 1 in float.
inline void require_near(const std::vector<float>& got, const std::vector<double>& want, double k) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  CHECK(worst <= 1e-6 * k * 4);
}

// Elements that are infinite or NaN.
inline std::size_t nonfinite(const std::vector<float>& v) {
  std::size_t bad = 0;
  for (float x : v) bad += std::isfinite(x) ? 0 : 1;
  return bad;
}

inline bool avx512() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

}  // namespace sparse_checks
