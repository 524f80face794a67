#pragma once
// The scalar problems of the replay benchmarks, written once over the number
// type so that plain doubles, tapegrad and a peer engine run the same code.
//   det_minor: the determinant of an n x n matrix by expansion along the
//     first row, recursively over minors (the classic det-by-minors test).
//   lax_wendroff: linear advection of q on a periodic grid, the stencil of
//     the Adept paper (Hogan 2014): NX points, `steps` time steps, Courant
//     number c; the objective is 0.1 * sum(q).
//   double_pendulum: two unit masses on unit rods, integrated by classic
//     RK4 with step 0.005 for `steps` steps from (theta1, theta2, omega1,
//     omega2); the objective is theta1 + 0.5 theta2 at the end. Generic
//     code as a physicist writes it (`using std::sin`), six sines and
//     cosines per derivative, 24 per step: the trig-heavy problem.
#include <cmath>
#include <cstdint>
#include <vector>

namespace bench_problems {

// Determinant of the submatrix of rows r..n-1 and the columns not in `used`.
template <class T>
T det_rows(const std::vector<T>& a, int n, int r, std::uint32_t used) {
  if (r == n - 1)
    for (int c = 0; c < n; ++c)
      if (!(used >> c & 1u)) return a[static_cast<std::size_t>(r * n + c)];
  T sum{};
  bool first = true, plus = true;
  for (int c = 0; c < n; ++c) {
    if (used >> c & 1u) continue;
    T term = a[static_cast<std::size_t>(r * n + c)] * det_rows(a, n, r + 1, used | 1u << c);
    if (first)
      sum = term;
    else if (plus)
      sum += term;
    else
      sum -= term;
    first = false, plus = !plus;
  }
  return sum;
}
template <class T>
T det_minor(const std::vector<T>& a, int n) {
  return det_rows(a, n, 0, 0);
}
// Entries uniform on [0, 1), seeded.
std::vector<double> det_matrix(int n);

constexpr int kNX = 100, kSteps = 2000;
constexpr double kCourant = 0.125;
std::vector<double> lw_initial();

// q is advanced in place; returns 0.1 * sum(q).
template <class T>
T lax_wendroff(std::vector<T>& q, int steps) {
  const int nx = static_cast<int>(q.size());
  const double c = kCourant;
  std::vector<T> flux(q.size());
  for (int s = 0; s < steps; ++s) {
    for (int i = 0; i < nx - 1; ++i)
      flux[static_cast<std::size_t>(i)] =
          0.5 * c *
          (q[static_cast<std::size_t>(i)] + q[static_cast<std::size_t>(i + 1)] +
           c * (q[static_cast<std::size_t>(i)] - q[static_cast<std::size_t>(i + 1)]));
    for (int i = 1; i < nx - 1; ++i)
      q[static_cast<std::size_t>(i)] +=
          flux[static_cast<std::size_t>(i - 1)] - flux[static_cast<std::size_t>(i)];
    q[0] = q[static_cast<std::size_t>(nx - 2)];
    q[static_cast<std::size_t>(nx - 1)] = q[1];
  }
  T sum = q[0];
  for (int i = 1; i < nx; ++i) sum += q[static_cast<std::size_t>(i)];
  return 0.1 * sum;
}

// d/dt of (theta1, theta2, omega1, omega2) for m1 = m2 = l1 = l2 = 1.
template <class T>
void pendulum_rates(const T& t1, const T& t2, const T& w1, const T& w2, T& d1, T& d2, T& a1,
                    T& a2) {
  using std::cos;
  using std::sin;
  const double g = 9.81;
  const T delta = t1 - t2;
  const T sd = sin(delta), cd = cos(delta);
  const T den = 3.0 - cos(2.0 * delta);
  d1 = w1;
  d2 = w2;
  a1 = (-3.0 * g * sin(t1) - g * sin(t1 - 2.0 * t2) - 2.0 * sd * (w2 * w2 + w1 * w1 * cd)) / den;
  a2 = 2.0 * sd * (2.0 * w1 * w1 + 2.0 * g * cos(t1) + w2 * w2 * cd) / den;
}
template <class T>
T double_pendulum(T t1, T t2, T w1, T w2, int steps) {
  const double h = 0.005;
  for (int s = 0; s < steps; ++s) {
    T k1[4], k2[4], k3[4], k4[4];
    pendulum_rates(t1, t2, w1, w2, k1[0], k1[1], k1[2], k1[3]);
    pendulum_rates<T>(t1 + 0.5 * h * k1[0], t2 + 0.5 * h * k1[1], w1 + 0.5 * h * k1[2],
                      w2 + 0.5 * h * k1[3], k2[0], k2[1], k2[2], k2[3]);
    pendulum_rates<T>(t1 + 0.5 * h * k2[0], t2 + 0.5 * h * k2[1], w1 + 0.5 * h * k2[2],
                      w2 + 0.5 * h * k2[3], k3[0], k3[1], k3[2], k3[3]);
    pendulum_rates<T>(t1 + h * k3[0], t2 + h * k3[1], w1 + h * k3[2], w2 + h * k3[3], k4[0],
                      k4[1], k4[2], k4[3]);
    t1 += h / 6 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]);
    t2 += h / 6 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]);
    w1 += h / 6 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2]);
    w2 += h / 6 * (k1[3] + 2.0 * k2[3] + 2.0 * k3[3] + k4[3]);
  }
  return t1 + 0.5 * t2;
}
constexpr int kPendulumSteps = 1000;
inline std::vector<double> pendulum_initial() { return {1.2, -0.7, 0.3, 0.1}; }

}  // namespace bench_problems
