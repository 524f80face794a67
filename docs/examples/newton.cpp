// Newton's method on the Rosenbrock function, with the gradient and the
// Hessian from one recorded tape replayed at every step (docs/usage.md).
// Prints each step; exits non-zero unless it converges to (1, 1).
#include <cmath>
#include <cstdio>
#include <tapegrad/tapegrad.hpp>
namespace tg = tapegrad;
int main() {
  std::vector<double> x{-1.2, 1.0};  // the classic starting point
  tg::Function f = tg::Function::record(x, [](std::span<const tg::Scalar> v) {
    return tg::pow(1.0 - v[0], 2.0) + 100.0 * tg::pow(v[1] - v[0] * v[0], 2.0);
  });
  double H[4], g[2];
  for (int step = 0; step < 50; ++step) {
    const double fx = f.hessian(x, H, g);  // value, gradient and Hessian at x
    std::printf("step %2d  x = (%.12f, %.12f)  f = %.3e  |grad| = %.3e\n", step, x[0], x[1], fx,
                std::hypot(g[0], g[1]));
    if (std::hypot(g[0], g[1]) < 1e-10)
      return std::fabs(x[0] - 1) < 1e-9 && std::fabs(x[1] - 1) < 1e-9 ? 0 : 1;
    const double det = H[0] * H[3] - H[1] * H[2];  // solve H d = g (2 x 2)
    x[0] -= (H[3] * g[0] - H[1] * g[1]) / det;
    x[1] -= (H[0] * g[1] - H[2] * g[0]) / det;
  }
  return 1;
}
