#pragma once
// Work over all parameters' elements cut evenly over threads: the parameters
// are laid end to end and thread t of n takes one contiguous share of that
// range, so small and large parameters share the work alike. Used by the
// optimiser updates and by the trainer's reduction of replica gradients.
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

// Calls f(i, begin, end) for the element ranges of thread t's share (of n) of
// `total` = total_elements(params). Cuts fall on 16-element boundaries (whole
// cache lines of floats).
template <class F>
void for_share(std::span<Parameter* const> params, std::int64_t total, std::int64_t t,
               std::int64_t n, F&& f) {
  const std::int64_t lo = total * t / n / 16 * 16;
  const std::int64_t hi = t + 1 == n ? total : total * (t + 1) / n / 16 * 16;
  std::int64_t off = 0;
  for (std::size_t i = 0; i < params.size() && off < hi; ++i) {
    const std::int64_t size = params[i]->numel();
    const std::int64_t b = std::max<std::int64_t>(lo - off, 0), e = std::min(hi - off, size);
    if (b < e) f(i, b, e);
    off += size;
  }
}

}  // namespace tapegrad::nn::slices
