// Fuzz target: a scalar function built from the fuzz bytes, with loops that
// repeat one statement over consecutive, strided or shared operands (what the
// optimiser groups into blocks), equal subexpressions (what it merges) and
// linear statements (whose weights it computes once). The optimised program
// must give the plain replay's value and gradient at the recorded point and
// at a moved one (the ops are chosen so that no partial is infinite).
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <vector>

namespace {
namespace tg = tapegrad;

bool close(double got, double want) { return std::abs(got - want) <= 1e-9 * (1 + std::abs(want)); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 0;
  const auto next = [&]() -> unsigned { return pos < size ? data[pos++] : 0; };
  const auto number = [&] { return (static_cast<double>(next()) - 128.0) / 64.0; };  // [-2, 2)
  const std::size_t n_in = 2 + next() % 5;
  std::vector<double> x0(n_in);
  for (double& v : x0) v = number();
  // One statement shape, chosen by the bytes.
  const auto shape = [](unsigned s, const tg::Scalar& a, const tg::Scalar& b, double c) {
    switch (s % 8) {
      case 0:
        return c * (a + b) + 0.5 * (a - b);  // linear
      case 1:
        return a * tg::tanh(b) + c;
      case 2:
        return tg::tanh(a) * b - tg::sigmoid(b);
      case 3:
        return tg::max(a, b) + tg::relu(a - c) * tg::abs(b);
      case 4:
        return tg::sqrt(tg::abs(a) + 0.1) / (tg::abs(b) + 1.0);
      case 5:
        return tg::exp(tg::tanh(a)) * (b * c);
      case 6:
        return tg::min(a * c, b) - a * tg::tanh(a);
      default:
        return -a + b / 2.0;
    }
  };
  const auto build = [&](std::span<const tg::Scalar> in) {
    std::vector<tg::Scalar> pool(in.begin(), in.end());
    for (int step = 0; step < 12 && pos < size; ++step) {
      const unsigned what = next();
      const std::size_t m = pool.size();
      const tg::Scalar& a = pool[next() % m];
      const tg::Scalar& b = pool[next() % m];
      const double c = number();
      if (what % 3 == 0) {
        pool.push_back(shape(what / 3, a, b, c));
        continue;
      }
      // A loop: y_j = shape(pool[i0 + j], pool[i1 + j * stride]), j < count.
      const std::size_t count = 2 + next() % 12, stride = next() % 3;
      const std::size_t i0 = next() % m, i1 = next() % m;
      const unsigned s = next();
      std::vector<tg::Scalar> ys;
      for (std::size_t j = 0; j < count; ++j)
        ys.push_back(shape(s, pool[(i0 + j) % m], pool[(i1 + j * stride) % m], c));
      for (tg::Scalar& y : ys) pool.push_back(y);
      if (what % 3 == 2) {  // and a sum of them, its own loop
        tg::Scalar sum = ys[0];
        for (std::size_t j = 1; j < ys.size(); ++j) sum = sum + ys[j] * ys[j];
        pool.push_back(sum);
      }
    }
    tg::Scalar out = pool.back();
    for (std::size_t k = 0; k + 1 < pool.size() && k < 6; ++k)
      out = out + pool[pool.size() - 2 - k];
    return out;
  };
  const std::size_t start = pos;
  tg::Function plain = tg::Function::record(x0, build);
  pos = start;
  tg::Function fast = tg::Function::record(x0, build);
  fast.optimize();
  std::vector<double> g1(n_in), g2(n_in);
  for (int trial = 0; trial < 2; ++trial) {
    std::vector<double> x = x0;
    if (trial == 1)
      for (std::size_t k = 0; k < n_in; ++k) x[k] += 0.01 * static_cast<double>(k + 1);
    const double v1 = plain.gradient(x, g1), v2 = fast.gradient(x, g2);
    // Agreement is asked where the numbers stay moderate: far out, sums of
    // large terms cancel differently in another order.
    bool moderate = std::abs(v1) < 1e6;
    for (double g : g1) moderate = moderate && std::abs(g) < 1e6;
    if (!moderate) continue;
    if (!close(v2, v1)) __builtin_trap();
    for (std::size_t k = 0; k < n_in; ++k)
      if (!close(g2[k], g1[k])) __builtin_trap();
  }
  return 0;
}
