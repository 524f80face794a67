#pragma once
// Eigen matrices of tapegrad numbers: Eigen::Matrix<tg::Scalar, ...> and
// Eigen::Matrix<tg::Real, ...> with products, transposes, reductions, norms
// and the decompositions with pivoting (partialPivLu, fullPivLu, llt, ldlt,
// householderQr, colPivHouseholderQr); every element operation is recorded
// on the tape like any other, so a gradient flows through a solve. Include
// this header (it brings Eigen/Dense) only where Eigen is wanted: the rest of
// tapegrad does not depend on Eigen. Link tapegrad::eigen from CMake.
//
//   using Mat = Eigen::Matrix<tg::Scalar, Eigen::Dynamic, Eigen::Dynamic>;
//   Mat A = ...;  Eigen::Vector<tg::Scalar, Eigen::Dynamic> b = ...;
//   tg::Scalar f = A.partialPivLu().solve(b).squaredNorm();
//   f.backward();
//
// Which Eigen operations work, and why, is in docs/usage.md ("Eigen").
#include <Eigen/Dense>
#include <limits>

#include "tapegrad/real.hpp"
#include "tapegrad/scalar.hpp"

namespace tapegrad {
// What Eigen asks of a real scalar type beyond the math functions: the
// complex-number accessors of a real number, and its square.
inline const Scalar& conj(const Scalar& x) { return x; }
inline const Scalar& real(const Scalar& x) { return x; }
inline Scalar imag(const Scalar&) { return Scalar(0.0); }
inline Scalar abs2(const Scalar& x) { return x * x; }
inline const Real& conj(const Real& x) { return x; }
inline const Real& real(const Real& x) { return x; }
inline Real imag(const Real&) { return Real(0.0); }
inline Real abs2(const Real& x) { return x * x; }
// Finite, NaN and infinity tests on the value (Eigen's numext calls them).
inline bool isfinite(const Scalar& x) { return std::isfinite(x.value()); }
inline bool isnan(const Scalar& x) { return std::isnan(x.value()); }
inline bool isinf(const Scalar& x) { return std::isinf(x.value()); }
inline bool isfinite(const Real& x) { return std::isfinite(x.value()); }
inline bool isnan(const Real& x) { return std::isnan(x.value()); }
inline bool isinf(const Real& x) { return std::isinf(x.value()); }
}  // namespace tapegrad

// Eigen asks std::numeric_limits for the type's limits (a Householder step
// compares against min()): double's, as constants on the current tape.
namespace tapegrad::detail {
template <class T>
struct NumericLimits : std::numeric_limits<double> {
  static T min() { return T(std::numeric_limits<double>::min()); }
  static T max() { return T(std::numeric_limits<double>::max()); }
  static T lowest() { return T(std::numeric_limits<double>::lowest()); }
  static T epsilon() { return T(std::numeric_limits<double>::epsilon()); }
  static T round_error() { return T(std::numeric_limits<double>::round_error()); }
  static T infinity() { return T(std::numeric_limits<double>::infinity()); }
  static T quiet_NaN() { return T(std::numeric_limits<double>::quiet_NaN()); }
  static T signaling_NaN() { return T(std::numeric_limits<double>::signaling_NaN()); }
  static T denorm_min() { return T(std::numeric_limits<double>::denorm_min()); }
};
}  // namespace tapegrad::detail
template <>
struct std::numeric_limits<tapegrad::Scalar> : tapegrad::detail::NumericLimits<tapegrad::Scalar> {};
template <>
struct std::numeric_limits<tapegrad::Real> : tapegrad::detail::NumericLimits<tapegrad::Real> {};

namespace Eigen {

namespace internal {
// The numeric constants of a tapegrad number type: constants on the current
// tape, from double's.
template <class T>
struct TapegradNumTraits : GenericNumTraits<double> {
  using Real = T;
  using NonInteger = T;
  using Nested = T;
  using Literal = T;
  enum {
    IsComplex = 0,
    IsInteger = 0,
    IsSigned = 1,
    RequireInitialization = 1,
    ReadCost = 1,
    AddCost = 2,
    MulCost = 2,
  };
  static T epsilon() { return T(std::numeric_limits<double>::epsilon()); }
  static T dummy_precision() { return T(1e-12); }
  static T highest() { return T(std::numeric_limits<double>::max()); }
  static T lowest() { return T(std::numeric_limits<double>::lowest()); }
  static T infinity() { return T(std::numeric_limits<double>::infinity()); }
  static T quiet_NaN() { return T(std::numeric_limits<double>::quiet_NaN()); }
  static int digits10() { return std::numeric_limits<double>::digits10; }
  static int digits() { return std::numeric_limits<double>::digits; }
};
}  // namespace internal

template <>
struct NumTraits<tapegrad::Scalar> : internal::TapegradNumTraits<tapegrad::Scalar> {};
template <>
struct NumTraits<tapegrad::Real> : internal::TapegradNumTraits<tapegrad::Real> {};

// A matrix of Scalar (or Real) times a double, and the other way round.
template <class BinaryOp>
struct ScalarBinaryOpTraits<tapegrad::Scalar, double, BinaryOp> {
  using ReturnType = tapegrad::Scalar;
};
template <class BinaryOp>
struct ScalarBinaryOpTraits<double, tapegrad::Scalar, BinaryOp> {
  using ReturnType = tapegrad::Scalar;
};
template <class BinaryOp>
struct ScalarBinaryOpTraits<tapegrad::Real, double, BinaryOp> {
  using ReturnType = tapegrad::Real;
};
template <class BinaryOp>
struct ScalarBinaryOpTraits<double, tapegrad::Real, BinaryOp> {
  using ReturnType = tapegrad::Real;
};

namespace internal {
// A Real expression beside a matrix is not promoted to Real by Eigen (it
// would bind it as a const lvalue, which Real refuses: real.hpp); the
// operators below record it, then scale.
template <class T>
requires tapegrad::LinearExpr<T>
struct promote_scalar_arg_unsupported<tapegrad::Real, T, tapegrad::Real, true, true> {};
}  // namespace internal

}  // namespace Eigen

namespace tapegrad {

// Eigen scales matrices by scalar expressions it computes itself
// (`tail / (c0 - beta)` in a Householder step). With Real, c0 - beta is an
// unrecorded linear expression, which converts to Real only as a
// temporary (real.hpp); these record it first, then scale.
template <LinearExpr E, class D>
requires(!std::is_lvalue_reference_v<E>) auto operator*(E&& e, const Eigen::DenseBase<D>& m) {
  return Real(std::forward<E>(e)) * m.derived();
}
template <LinearExpr E, class D>
requires(!std::is_lvalue_reference_v<E>) auto operator*(const Eigen::DenseBase<D>& m, E&& e) {
  return m.derived() * Real(std::forward<E>(e));
}
template <LinearExpr E, class D>
requires(!std::is_lvalue_reference_v<E>) auto operator/(const Eigen::DenseBase<D>& m, E&& e) {
  return m.derived() / Real(std::forward<E>(e));
}

// The values (or gradients) of a matrix of Scalars or Reals, as doubles.
template <class Derived>
Eigen::Matrix<double, Derived::RowsAtCompileTime, Derived::ColsAtCompileTime> values_of(
    const Eigen::MatrixBase<Derived>& m) {
  return m.unaryExpr([](const auto& x) { return x.value(); });
}
template <class Derived>
Eigen::Matrix<double, Derived::RowsAtCompileTime, Derived::ColsAtCompileTime> grads_of(
    const Eigen::MatrixBase<Derived>& m) {
  return m.unaryExpr([](const auto& x) { return x.grad(); });
}
// A matrix of new variables on the current tape with the given values.
template <class T = Scalar, class Derived>
Eigen::Matrix<T, Derived::RowsAtCompileTime, Derived::ColsAtCompileTime> variables(
    const Eigen::MatrixBase<Derived>& values) {
  return values.unaryExpr([](double v) { return T(var(v)); });
}

}  // namespace tapegrad
