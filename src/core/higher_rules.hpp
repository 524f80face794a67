#pragma once
// Private: generic higher-order rules shared by the tensor ops.
#include <cstdint>

#include "tapegrad/higher.hpp"

namespace tapegrad::detail {

// The JVP of an op that is linear in its tensor inputs and whose forward
// writes only its value (sum, reshape, transpose, slice, concat): the forward
// itself, run on the inputs' tangents.
void linear_jvp(Tape& tape, std::uint32_t t, Tangents& tg);

// The curvature term of an op bilinear in its first two tensor inputs
// (matmul, linear without its bias): d/da of the backward rule applied to
// ta is the backward rule with b's value replaced by tb (and vice versa), so
// it is the op's own backward run with the inputs' values swapped for their
// tangents and the first-order adjoint as the upstream gradient. A third
// input (a bias) takes no curvature.
void bilinear_curvature(Tape& tape, std::uint32_t t, Tangents& tg);

}  // namespace tapegrad::detail
