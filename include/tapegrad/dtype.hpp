#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tapegrad {

// Element types of tensors: float32 for training speed, float64 for gradient
// checks and exact worked examples.
enum class DType : std::uint8_t { f32, f64 };

constexpr std::size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 8; }
constexpr std::string_view dtype_name(DType d) { return d == DType::f32 ? "float32" : "float64"; }

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}

// Calls f with a value of the C++ type matching d (float{} or double{}).
template <class F>
decltype(auto) dispatch_dtype(DType d, F&& f) {
  if (d == DType::f32) return f(float{});
  return f(double{});
}

}  // namespace tapegrad
