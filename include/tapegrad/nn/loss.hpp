#pragma once
// Losses, each reduced to a one-element tensor ready for backward().
#include <span>

#include "tapegrad/ops.hpp"

namespace tapegrad::nn {

// Each takes the caller's line like the engine's ops, and gives it to every
// node it records.

// E = 1/2 ||a - r||^2 summed over all elements (the reference notes' E).
inline Tensor half_squared_error(const Tensor& a, const Tensor& r, Site where = Site::current()) {
  return 0.5 * detail::T{sum(pow(sub(a, r, where), 2, where), where), where};
}
// Mean of (a - r)^2 over all elements.
inline Tensor mse(const Tensor& a, const Tensor& r, Site where = Site::current()) {
  return mean(pow(sub(a, r, where), 2, where), where);
}
// Binary cross-entropy on logits (stable for any logit).
inline Tensor binary_cross_entropy(const Tensor& logits, const Tensor& targets,
                                   Site where = Site::current()) {
  return bce_with_logits(logits, targets, where);
}
// Softmax cross-entropy on logits (N, C) with integer labels, mean over rows.
inline Tensor cross_entropy(const Tensor& logits, std::span<const std::int32_t> labels,
                            Site where = Site::current()) {
  return softmax_cross_entropy(logits, labels, where);
}

}  // namespace tapegrad::nn
