// Eigen matrices of Scalar and Real (tapegrad/eigen.hpp): products,
// reductions, norms and decompositions with pivoting, with gradients
// through them against central differences of the same code on double.
#include <tapegrad/eigen.hpp>

#include "helpers.hpp"

namespace {
template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// A function of a 4x4 matrix and a 4-vector, generic over the number type,
// through the given decomposition.
template <class T>
T through(int which, const Mat<T>& A, const Vec<T>& b) {
  switch (which) {
    case 0:  // LU with partial pivoting
      return A.partialPivLu().solve(b).squaredNorm();
    case 1: {  // Cholesky of A^T A + I, symmetric positive definite
      const Mat<T> S = A.transpose() * A + Mat<T>::Identity(A.rows(), A.cols());
      return S.llt().solve(b).sum() + S.llt().matrixL().toDenseMatrix().trace();
    }
    case 2:  // Householder QR, least squares
      return A.householderQr().solve(b).norm();
    case 3:  // full-pivoting LU: the determinant
      return A.fullPivLu().determinant();
    default: {  // products, transposes, reductions, norms
      const Mat<T> P = A * A.transpose() - 0.5 * A;
      const Vec<T> v = P * b;
      return v.dot(b) + P.colwise().sum().maxCoeff() + P.rowwise().norm().minCoeff() +
             A.cwiseAbs().maxCoeff() + P.trace() * 0.1 + A.array().sin().sum() +
             A.template lpNorm<1>();
    }
  }
}

const Mat<double> kA = (Mat<double>(4, 4) << 0.2, 1.5, -0.7, 0.3,  //
                        2.1, -0.4, 0.9, 0.6,                         //
                        -1.1, 0.8, 0.5, 1.7,                         //
                        0.4, -0.9, 1.3, -0.8)
                           .finished();
const Vec<double> kb = (Vec<double>(4) << 1.0, -2.0, 0.5, 3.0).finished();

template <class T>
void check_gradient(int which) {
  INFO("decomposition " << which);
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const Mat<T> A = tg::variables<T>(kA);
  const Vec<T> b = tg::variables<T>(kb);
  const T f = through<T>(which, A, b);
  CHECK(f.value() == Approx(through<double>(which, kA, kb)).epsilon(1e-12));
  f.backward();
  const Mat<double> gA = tg::grads_of(A);
  const Vec<double> gb = tg::grads_of(b);
  const double h = 1e-6;
  for (Eigen::Index i = 0; i < kA.size(); ++i) {
    Mat<double> p = kA, m = kA;
    p(i) += h, m(i) -= h;
    const double fd = (through<double>(which, p, kb) - through<double>(which, m, kb)) / (2 * h);
    CHECK(gA(i) == Approx(fd).epsilon(1e-6).margin(1e-8));
  }
  for (Eigen::Index i = 0; i < kb.size(); ++i) {
    Vec<double> p = kb, m = kb;
    p(i) += h, m(i) -= h;
    const double fd = (through<double>(which, kA, p) - through<double>(which, kA, m)) / (2 * h);
    CHECK(gb(i) == Approx(fd).epsilon(1e-6).margin(1e-8));
  }
}
}  // namespace

TEST_CASE("gradients through Eigen decompositions of Scalar match finite differences",
          "[eigen]") {
  for (int which = 0; which < 5; ++which) check_gradient<tg::Scalar>(which);
}

TEST_CASE("gradients through Eigen decompositions of Real match finite differences", "[eigen]") {
  for (int which = 0; which < 5; ++which) check_gradient<tg::Real>(which);
}

TEST_CASE("an Eigen solve records a tape that replays at new matrices", "[eigen][replay]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  const Mat<tg::Scalar> A = tg::variables(kA);
  const Vec<tg::Scalar> b = tg::variables(kb);
  const tg::Scalar f = through<tg::Scalar>(0, A, b);
  std::vector<tg::Scalar> in(A.data(), A.data() + A.size());
  in.insert(in.end(), b.data(), b.data() + b.size());
  tg::Function fn(tape, in, f);
  // A small change keeps every pivot choice: replay gives the new solve.
  Mat<double> A2 = kA;
  A2(1, 2) += 0.01;
  std::vector<double> x(A2.data(), A2.data() + A2.size());
  x.insert(x.end(), kb.data(), kb.data() + kb.size());
  std::vector<double> g(x.size());
  CHECK(fn.gradient(x, g) == Approx(through<double>(0, A2, kb)).epsilon(1e-12));
  // Swapping two rows changes the pivots: replay says so instead of answering.
  Mat<double> A3 = kA;
  A3.row(0).swap(A3.row(1));
  std::vector<double> x3(A3.data(), A3.data() + A3.size());
  x3.insert(x3.end(), kb.data(), kb.data() + kb.size());
  CHECK_THROWS_AS(fn.gradient(x3, g), tg::BranchChanged);
}
