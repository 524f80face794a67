// A gradient through an Eigen LU solve, through an installed tapegrad:
// exits 0 when it matches the exact one. For A = diag(a, b), x = A^-1 c,
// f = x0 + x1 = c0/a + c1/b: df/da = -c0/a^2, df/db = -c1/b^2.
#include <tapegrad/eigen.hpp>

int main() {
  namespace tg = tapegrad;
  Eigen::Matrix<tg::Scalar, 2, 2> A;
  tg::Scalar a = tg::var(2), b = tg::var(4);
  A << a, 0.0, 0.0, b;
  Eigen::Matrix<tg::Scalar, 2, 1> c(tg::Scalar(3.0), tg::Scalar(8.0));
  tg::Scalar f = A.partialPivLu().solve(c).sum();
  f.backward();
  const bool ok = f.value() == 3.5 && a.grad() == -0.75 && b.grad() == -0.5;
  return ok ? 0 : 1;
}
