#pragma once
// Losses, each reduced to a one-element tensor ready for backward().
#include <span>

#include "tapegrad/ops.hpp"

namespace tapegrad::nn {

// E = 1/2 ||a - r||^2 summed over all elements (the reference notes' E).
inline Tensor half_squared_error(const Tensor& a, const Tensor& r) {
  return 0.5 * sum(pow(a - r, 2));
}
// Mean of (a - r)^2 over all elements.
inline Tensor mse(const Tensor& a, const Tensor& r) { return mean(pow(a - r, 2)); }
// Binary cross-entropy on logits (stable for any logit).
inline Tensor binary_cross_entropy(const Tensor& logits, const Tensor& targets) {
  return bce_with_logits(logits, targets);
}
// Softmax cross-entropy on logits (N, C) with integer labels, mean over rows.
inline Tensor cross_entropy(const Tensor& logits, std::span<const std::int32_t> labels) {
  return softmax_cross_entropy(logits, labels);
}

}  // namespace tapegrad::nn
