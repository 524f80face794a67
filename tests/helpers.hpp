#pragma once
// Shared test helpers: gradient checks with the project's tolerance, and
// comparisons of vectors.
#include <catch2/catch.hpp>
#include <tapegrad/tapegrad.hpp>

#include <vector>

namespace tg = tapegrad;

// Central differences, step 1e-6, pass when |a - n| <= 1e-5 + 1e-3 |n|.
inline void require_gradcheck(const tg::TensorFn& f, const std::vector<tg::GradcheckInput>& in) {
  const tg::GradcheckResult r = tg::gradcheck(f, in);
  INFO(r.str());
  REQUIRE(r.pass);
}

// Values in [lo, hi) with a fixed seed, kept away from 0 by `gap` (for kinks).
inline std::vector<double> sample(std::int64_t n, std::uint64_t seed, double lo = -2, double hi = 2,
                                  double gap = 0.0) {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  std::vector<double> v = tg::uniform({n}, lo, hi, seed).values();
  for (double& x : v)
    if (std::abs(x) < gap) x = x < 0 ? -gap - std::abs(x) : gap + x;
  return v;
}

inline tg::GradcheckInput input(tg::Shape s, std::uint64_t seed, double lo = -2, double hi = 2,
                                double gap = 0.0) {
  return {s, sample(s.numel(), seed, lo, hi, gap), ""};
}

inline void require_close(const std::vector<double>& got, const std::vector<double>& want,
                          double tol = 5e-7) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(0));
  }
}
