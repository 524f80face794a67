#pragma once
// The scalar moons MLP of the benchmarks: a 2-16-16-1 ReLU network of
// Scalars, built neuron by neuron, on 100 moons points with the max-margin
// loss (about 65,000 nodes per step).
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <random>
#include <vector>

namespace tapegrad_bench {
namespace tg = tapegrad;

// Two interleaving half circles with noise (seeded), labels -1 / +1.
inline void make_moons(int n, std::vector<double>& xs, std::vector<double>& ys) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.1);
  const double pi = std::acos(-1.0);
  for (int i = 0; i < n; ++i) {
    const bool upper = i < n / 2;
    const double t = pi * (upper ? i : i - n / 2) / (n / 2 - 1);
    xs.push_back((upper ? std::cos(t) : 1 - std::cos(t)) + noise(rng));
    xs.push_back((upper ? std::sin(t) : 0.5 - std::sin(t)) + noise(rng));
    ys.push_back(upper ? -1.0 : 1.0);
  }
}

struct MoonsNet {
  MoonsNet() {
    make_moons(100, xs, ys);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-1, 1);
    for (int l = 0; l < 3; ++l)
      for (int o = 0; o < kSizes[l + 1]; ++o)
        for (int i = 0; i <= kSizes[l]; ++i)
          params.push_back(tape.variable(u(rng) / std::sqrt(kSizes[l])));
    mark = tape.mark();
  }
  // Rewinds to the parameters, zeroes gradients and records the loss.
  // (Locals, not members, in the loop: with members the compiler reloads
  // every vector's pointers after each push_back, 35% slower.)
  tg::Scalar loss() {
    tape.rewind(mark);
    tape.zero_grad();
    const tg::Scalar* P = params.data();
    std::vector<tg::Scalar> in, out;
    in.reserve(16), out.reserve(16);
    tg::Scalar total = tape.constant(0.0);
    for (int p = 0; p < 100; ++p) {
      in = {tape.constant(xs[2 * p]), tape.constant(xs[2 * p + 1])};
      std::size_t k = 0;
      for (int l = 0; l < 3; ++l) {
        out.clear();
        for (int o = 0; o < kSizes[l + 1]; ++o) {
          tg::Scalar acc = P[k + static_cast<std::size_t>(kSizes[l])];  // bias
          for (int i = 0; i < kSizes[l]; ++i)
            acc = acc + P[k + i] * in[static_cast<std::size_t>(i)];
          k += static_cast<std::size_t>(kSizes[l]) + 1;
          out.push_back(l < 2 ? tg::relu(acc) : acc);
        }
        std::swap(in, out);
      }
      total = total + tg::relu(1.0 - ys[static_cast<std::size_t>(p)] * in[0]);
    }
    return total / 100.0;
  }
  static constexpr int kSizes[] = {2, 16, 16, 1};
  tg::Tape tape;
  std::vector<double> xs, ys;
  std::vector<tg::Scalar> params;
  tg::Mark mark;
};

}  // namespace tapegrad_bench
