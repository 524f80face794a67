#pragma once
// Shared test helpers: gradient checks with the project's tolerance, and
// comparisons of vectors.
#include <catch2/catch.hpp>
#include <tapegrad/nn.hpp>
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

// Central differences of `loss` with respect to each of p's values (step h),
// putting every value back after use.
template <class Loss>
std::vector<double> param_central_differences(tapegrad::nn::Parameter& p, Loss&& loss,
                                              double h = 1e-6) {
  std::vector<double> v = p.values(), out(v.size());
  for (std::size_t k = 0; k < v.size(); ++k) {
    const double at = v[k];
    v[k] = at + h, p.set_values(v);
    const double up = loss();
    v[k] = at - h, p.set_values(v);
    const double down = loss();
    v[k] = at, p.set_values(v);
    out[k] = (up - down) / (2 * h);
  }
  return out;
}

inline void require_close(const std::vector<double>& got, const std::vector<double>& want,
                          double tol = 5e-7) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(got[i] == Approx(want[i]).margin(tol).epsilon(0));
  }
}

// Trains `model` on `data` (features as float32) for `epochs` epochs of
// shuffled batches on the current tape, one optimiser step per batch.
inline void train_epochs(tapegrad::nn::Module& model, tapegrad::nn::Optimizer& opt,
                         const tapegrad::nn::Dataset& data, std::int64_t batch, std::uint64_t seed,
                         int epochs) {
  namespace nn = tapegrad::nn;
  nn::Batches batches(data, batch, seed);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  tg::Tape& tape = tg::current_tape();
  for (int epoch = 0; epoch < epochs; ++epoch) {
    batches.start_epoch(epoch);
    while (batches.next(x, y)) {
      tape.clear();
      const tg::Shape shape{static_cast<std::int64_t>(y.size()), data.features};
      tg::Tensor loss =
          nn::cross_entropy(model(tg::external(shape, tg::DType::f32, x.data(), nullptr)), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  tape.clear();
}
