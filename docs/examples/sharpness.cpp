// The sharpness of a trained MLP: the largest eigenvalue of the Hessian of
// its loss with respect to all parameters, by power iteration on
// Hessian-vector products (docs/usage.md), and the cost of one HVP against
// one gradient.
//
//   sharpness                          a small MLP trained here on moons
//   sharpness CHECKPOINT [DATA_DIR]    the Fashion-MNIST MLP of `tapegrad train`
//                                      (runs/fashion-mnist/checkpoint.tgc), on
//                                      1000 test images
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>
namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const bool trained = argc > 1;
  nn::Dataset data = trained ? nn::read_idx_folder(argc > 2 ? argv[2] : nn::kFashionMnistDir, false)
                             : nn::make_moons(400, 1);
  const std::int64_t n = std::min<std::int64_t>(data.n, 1000);
  nn::MLP model(trained ? std::vector<std::int64_t>{784, 256, 128, 10}
                        : std::vector<std::int64_t>{2, 16, 16, 2},
                {.seed = 1});
  if (trained) {
    nn::load_checkpoint(argv[1], model, nullptr);
  } else {  // a few hundred Adam steps on the moons
    nn::Adam adam(model.parameters(), {.lr = 0.02});
    tg::Tape tape;
    for (int step = 0; step < 300; ++step) {
      tape.clear();
      tg::TapeScope s(tape);
      adam.zero_grad();
      nn::cross_entropy(
          model(tg::external({n, data.features}, tg::DType::f32, data.x.data(), nullptr)),
          std::span(data.y.data(), static_cast<std::size_t>(n)))
          .backward();
      adam.step();
    }
  }
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const tg::Tensor loss = nn::cross_entropy(
      model(tg::external({n, data.features}, tg::DType::f32, data.x.data(), nullptr)),
      std::span(data.y.data(), static_cast<std::size_t>(n)));
  const std::vector<tg::Ref> params = nn::parameter_leaves(tape, model.parameters());
  std::size_t dim = 0;
  for (const tg::Ref& p : params) dim += static_cast<std::size_t>(p.size());

  // Power iteration: v <- H v / |H v|; lambda = v . H v.
  std::vector<double> v(dim);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  for (double& e : v) e = normal(rng);
  double lambda = 0, residual = 0;
  for (int it = 0; it < 100; ++it) {
    double norm = 0;
    for (double e : v) norm += e * e;
    for (double& e : v) e /= std::sqrt(norm);
    const std::vector<double> hv = tg::hvp(loss, params, v);
    double next = 0;
    for (std::size_t i = 0; i < dim; ++i) next += v[i] * hv[i];
    residual = 0;
    for (std::size_t i = 0; i < dim; ++i) residual += std::pow(hv[i] - next * v[i], 2);
    residual = std::sqrt(residual) / std::fabs(next);
    const bool done = it > 5 && std::fabs(next - lambda) < 1e-4 * std::fabs(next);
    lambda = next;
    v = hv;
    if (done) {
      std::printf("power iteration converged after %d HVPs\n", it + 1);
      break;
    }
  }
  std::printf("loss %.6f over %lld samples, %zu parameters\n", loss.value(0),
              static_cast<long long>(n), dim);
  std::printf("sharpness (largest Hessian eigenvalue) %.6g, relative residual |Hv - lv|/|l| %.2e\n",
              lambda, residual);

  // One gradient against one HVP, medians of 15.
  const auto median = [](auto&& fn) {
    std::vector<double> t;
    for (int r = 0; r < 15; ++r) {
      const auto t0 = Clock::now();
      fn();
      t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  const double grad_ms = median([&] { tg::vjp({loss}, params, std::vector<double>{1.0}); });
  const double hvp_ms = median([&] { tg::hvp(loss, params, v); });
  std::printf("one gradient %.3f ms, one HVP %.3f ms (%.2fx)\n", grad_ms, hvp_ms, hvp_ms / grad_ms);
  return std::isfinite(lambda) && lambda > 0 && residual < 0.05 ? 0 : 1;
}
