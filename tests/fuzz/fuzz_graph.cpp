// Fuzz target: a graph built from the fuzz bytes — a sequence of scalar and
// tensor ops on random shapes — then backward. It must end with finite
// results or a tapegrad::Error (anomaly detection turns NaN/inf into one).
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace tg = tapegrad;
  std::size_t pos = 0;
  const auto next = [&]() -> unsigned { return pos < size ? data[pos++] : 0; };
  const auto dim = [&] {
    return static_cast<std::int64_t>(next() % 4);
  };  // 0..3, zero-size axes too
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::DetectAnomaly anomaly;
  try {
    std::vector<tg::Tensor> ts;
    std::vector<tg::Scalar> ss{tg::var(0.5), tg::var(-1.25)};
    for (int i = 0; i < 3; ++i) {
      const tg::Shape s = next() % 2 ? tg::Shape{dim(), dim()} : tg::Shape{dim()};
      ts.push_back(tg::uniform(s, -2, 2, next(), {.requires_grad = true}));
    }
    for (int step = 0; step < 24 && pos < size; ++step) {
      const unsigned op = next() % 24;
      const tg::Tensor& a = ts[next() % ts.size()];
      const tg::Tensor& b = ts[next() % ts.size()];
      const tg::Scalar& p = ss[next() % ss.size()];
      const tg::Scalar& q = ss[next() % ss.size()];
      switch (op) {
        case 0:
          ts.push_back(a + b);
          break;
        case 1:
          ts.push_back(a - b);
          break;
        case 2:
          ts.push_back(a * b);
          break;
        case 3:
          ts.push_back(a / (tg::abs(b) + 1.0));
          break;
        case 4:
          ts.push_back(tg::maximum(a, b));
          break;
        case 5:
          ts.push_back(tg::matmul(a, b));
          break;
        case 6:
          ts.push_back(tg::tanh(a));
          break;
        case 7:
          ts.push_back(tg::sigmoid(a));
          break;
        case 8:
          ts.push_back(tg::relu(a));
          break;
        case 9:
          ts.push_back(tg::sum(a, static_cast<int>(next() % 3) - 1, next() % 2));
          break;
        case 10:
          ts.push_back(tg::max(a, static_cast<int>(next() % 3) - 1));
          break;
        case 11:
          ts.push_back(tg::transpose(a));
          break;
        case 12:
          ts.push_back(tg::reshape(a, {a.numel()}));
          break;
        case 13:
          ts.push_back(tg::concat({a, b}, static_cast<int>(next() % 2)));
          break;
        case 14:
          ts.push_back(tg::slice_rows(a, next() % 3, next() % 4));
          break;
        case 15:
          ts.push_back(p * a);
          break;
        case 16:
          ss.push_back(tg::sum(a).item());
          break;
        case 17:
          ss.push_back(p * q + 0.5);
          break;
        case 18:
          ss.push_back(tg::tanh(p) - q);
          break;
        case 19:
          ss.push_back(tg::max(p, q) / (tg::abs(q) + 1.0));
          break;
        case 20:
          ts.push_back(tg::exp(a));
          break;
        case 21:
          ts.push_back(tg::log(tg::abs(a) + 0.5));
          break;
        case 22:
          ts.push_back(tg::softmax(a));
          break;
        default:
          ts.push_back(tg::mean(a));
          break;
      }
    }
    tg::Scalar loss = tg::sum(ts.back()).item() + ss.back();
    loss.backward();
    for (const tg::Tensor& t : ts)
      for (double g : t.grads())
        if (!std::isfinite(g)) __builtin_trap();  // anomaly mode should have thrown
  } catch (const tg::Error&) {
  }
  return 0;
}
