#pragma once
// The scalar problems of the replay benchmarks, written once over the number
// type so that plain doubles, tapegrad and a peer engine run the same code.
//   det_minor: the determinant of an n x n matrix by expansion along the
//     first row, recursively over minors (the classic det-by-minors test).
//   lax_wendroff: linear advection of q on a periodic grid, the stencil of
//     the Adept paper (Hogan 2014): NX points, `steps` time steps, Courant
//     number c; the objective is 0.1 * sum(q).
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

}  // namespace bench_problems
