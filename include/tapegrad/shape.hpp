#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace tapegrad {

inline constexpr int kMaxRank = 8;

// Dimensions of a row-major tensor, stored inline (no heap). A rank-0 shape is
// a single number. Construction validates: no negative size, rank at most
// kMaxRank, element count below 2^48, so a hostile shape fails before any
// allocation.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::span<const std::int64_t> dims);

  int rank() const { return rank_; }
  std::int64_t operator[](int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t numel() const;
  std::span<const std::int64_t> dims() const {
    return {dims_.data(), static_cast<std::size_t>(rank_)};
  }

  // Resolves a possibly negative axis (-1 = last) and checks it; `op` names the
  // caller in the error.
  int axis(int a, const char* op) const;
  // Same shape with axis `axis` (already resolved) of size `size`.
  Shape with_dim(int axis, std::int64_t size) const;
  // Same shape with one axis removed (or set to 1 when keepdims).
  Shape reduced(int axis, bool keepdims) const;

  bool operator==(const Shape& o) const;
  // "(3x2)"; "()" for rank 0.
  std::string str() const;

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// NumPy broadcasting of two shapes; throws naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace tapegrad
