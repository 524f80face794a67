#pragma once
// Work over all parameters' elements cut evenly over threads, so small and
// large parameters share the work alike. Used by the optimiser updates and
// by the trainer's reduction of replica gradients.
#include <algorithm>
#include <cstdint>
#include <span>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn::slices {

inline std::int64_t total_elements(std::span<Parameter* const> params) {
  std::int64_t total = 0;
  for (const Parameter* p : params) total += p->numel();
  return total;
}

// Calls f(i, begin, end) for the element ranges of thread t's share (of n).
// A large parameter is cut in n equal contiguous pieces and thread t takes
// piece t: the same cut as the products that read a weight by halves of its
// rows (gemm_nn_sparse_a), so a thread updates the part of the weight its
// core read, and the weight stays in that core's cache. The small ones are
// laid end to end and that range is cut evenly. Cuts fall on 16-element
// boundaries (whole cache lines of floats).
inline constexpr std::int64_t kCutEachFrom = 4096;  // elements
template <class F>
void for_share(std::span<Parameter* const> params, std::int64_t t, std::int64_t n, F&& f) {
  const auto cut = [&](std::int64_t size, std::int64_t u) {
    return u == n ? size : size * u / n / 16 * 16;
  };
  std::int64_t small = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::int64_t size = params[i]->numel();
    if (size < kCutEachFrom) {
      small += size;
      continue;
    }
    const std::int64_t b = cut(size, t), e = cut(size, t + 1);
    if (b < e) f(i, b, e);
  }
  const std::int64_t lo = cut(small, t), hi = cut(small, t + 1);
  std::int64_t off = 0;
  for (std::size_t i = 0; i < params.size() && off < hi; ++i) {
    const std::int64_t size = params[i]->numel();
    if (size >= kCutEachFrom) continue;
    const std::int64_t b = std::max<std::int64_t>(lo - off, 0), e = std::min(hi - off, size);
    if (b < e) f(i, b, e);
    off += size;
  }
}

}  // namespace tapegrad::nn::slices
