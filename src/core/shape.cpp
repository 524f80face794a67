#include "tapegrad/shape.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tapegrad/error.hpp"

namespace tapegrad {

namespace {
constexpr std::int64_t kMaxElements = std::int64_t{1} << 48;
}

Shape::Shape(std::initializer_list<std::int64_t> dims)
    : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const std::int64_t> dims) {
  if (dims.size() > static_cast<std::size_t>(kMaxRank))
    throw Error(fmt::format("shape: rank {} exceeds the limit of {}", dims.size(), kMaxRank));
  std::int64_t n = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = dims[i];
    if (d < 0) throw Error(fmt::format("shape: dimension {} is negative ({})", i, d));
    dims_[i] = d;
    if (d != 0 && n > kMaxElements / d)
      throw Error(fmt::format("shape: element count overflows (more than 2^48 elements)"));
    n *= d;
  }
  rank_ = static_cast<int>(dims.size());
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
  return n;
}

int Shape::axis(int a, const char* op) const {
  const int r = std::max(rank_, 1);
  if (a < -r || a >= r)
    throw Error(fmt::format("{}: axis {} is out of range for shape {}", op, a, str()));
  return a < 0 ? a + r : a;
}

Shape Shape::with_dim(int axis, std::int64_t size) const {
  std::array<std::int64_t, kMaxRank> d = dims_;
  d[static_cast<std::size_t>(axis)] = size;
  return Shape(
      std::span<const std::int64_t>(d.data(), static_cast<std::size_t>(rank_)));  // validates
}

Shape Shape::reduced(int axis, bool keepdims) const {
  Shape s;
  for (int i = 0; i < rank_; ++i) {
    if (i == axis) {
      if (keepdims) s.dims_[static_cast<std::size_t>(s.rank_++)] = 1;
    } else {
      s.dims_[static_cast<std::size_t>(s.rank_++)] = dims_[static_cast<std::size_t>(i)];
    }
  }
  return s;
}

bool Shape::operator==(const Shape& o) const {
  return rank_ == o.rank_ && std::equal(dims_.begin(), dims_.begin() + rank_, o.dims_.begin());
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += 'x';
    s += std::to_string(dims_[static_cast<std::size_t>(i)]);
  }
  return s + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int r = std::max(a.rank(), b.rank());
  std::array<std::int64_t, kMaxRank> d{};
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw Error(fmt::format("{}: shapes {} and {} do not broadcast (axis {}: {} vs {})", op,
                              a.str(), b.str(), i, da, db));
    d[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::span<const std::int64_t>(d.data(), static_cast<std::size_t>(r)));
}

}  // namespace tapegrad
