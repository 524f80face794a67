// A custom model on custom data, trained by nn::Trainer (docs/usage.md).
#include <cstdio>
#include <random>
#include <tapegrad/nn.hpp>
namespace tg = tapegrad;
namespace nn = tapegrad::nn;
// Two rings: label 1 inside radius 1, label 0 on a ring of radius 2.
nn::Dataset rings(std::int64_t n, unsigned seed) {
  nn::Dataset d{.n = n, .features = 2, .classes = 2, .name = "rings"};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> angle(0, 6.2832f), noise(-0.3f, 0.3f);
  for (std::int64_t i = 0; i < n; ++i) {
    const float r = (i % 2 ? 1.0f : 2.0f) + noise(rng), a = angle(rng);
    d.x.insert(d.x.end(), {r * std::cos(a), r * std::sin(a)});
    d.y.push_back(i % 2);
  }
  return d;
}
// tanh features, then a linear read-out of them and of the raw input.
struct RingNet : nn::Module {
  nn::Linear hidden{"hidden", 2, 16, tg::DType::f32, 1}, out{"out", 18, 2, tg::DType::f32, 2};
  RingNet() : Module("") { register_module(hidden), register_module(out); }
  tg::Tensor forward(const tg::Tensor& x) override {
    return out(tg::concat({tg::tanh(hidden(x)), x}, 1));
  }
};
int main() {
  const nn::Dataset train = rings(2000, 1), test = rings(500, 2);
  RingNet model;
  nn::Adam adam(model.parameters(), {.lr = 0.02});
  nn::Trainer trainer(model, adam,
                      {.epochs = 15, .batch_size = 32, .schedule = nn::Schedule::cosine});
  const auto& history = trainer.fit(train, &test);
  for (const nn::EpochMetrics& m : history)
    std::printf("epoch %2ld  loss %.4f  test accuracy %.1f%%\n", m.epoch, m.train_loss,
                100 * m.test_accuracy);
  return history.back().test_accuracy > 0.97 ? 0 : 1;  // the rings separate cleanly
}
