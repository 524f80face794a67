// The math vocabulary: every function of the op table on Scalar, Real and
// Tensor, against central differences in float64, to second order, against
// the C library's values, and at the edges of its domain.
#include <tapegrad/inspect.hpp>
#include <tapegrad/registry.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numbers>
#include <set>

#include "helpers.hpp"

namespace {
using S = std::span<const tg::Scalar>;

void check12(const tg::ScalarFn& f, std::vector<double> x) {
  const tg::GradcheckResult r1 = tg::gradcheck(f, x);
  INFO(r1.str());
  REQUIRE(r1.pass);
  const tg::GradcheckResult r2 = tg::gradcheck_order2(f, x);
  INFO(r2.str());
  REQUIRE(r2.pass);
}

// d/dx of f at x, and its value, through one recording and one sweep.
template <class F>
std::pair<double, double> value_and_grad(F f, double x) {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar v = tg::var(x);
  tg::Scalar y = f(v);
  y.backward();
  return {y.value(), v.grad()};
}
}  // namespace

TEST_CASE("every math op of the table is registered for gradcheck, on Scalar and Tensor",
          "[ops][math]") {
  const std::vector<tg::ScalarOp> scalar = tg::scalar_ops_with_checks();
  std::set<std::string> names;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) names.insert(c.op);
  for (int i = 0; i < static_cast<int>(tg::ScalarOp::count_); ++i) {
    const auto op = static_cast<tg::ScalarOp>(i);
    if (!tg::scalar_op_math(op)) continue;
    INFO(tg::scalar_op_name(op));
    CHECK(std::count(scalar.begin(), scalar.end(), op) == 1);
    CHECK(names.count(std::string(tg::scalar_op_name(op)) + "/scalar") == 1);
    if (tg::scalar_op_kind(op) == tg::detail::OpKind::unary_fn)
      CHECK(names.count(tg::scalar_op_name(op)) == 1);  // the element-wise tensor op
  }
  for (const char* binary : {"atan2", "hypot", "fmod"}) CHECK(names.count(binary) == 1);
}

TEST_CASE("every registered scalar and tensor case passes to first and second order",
          "[ops][math]") {
  std::uint64_t seed = 7;
  for (const tg::OpCheckCase& c : tg::op_check_cases()) {
    std::vector<tg::GradcheckInput> in;
    for (const tg::Shape& s : c.shapes) in.push_back(input(s, seed++, c.lo, c.hi, c.gap));
    INFO(c.op);
    const tg::GradcheckResult r1 = tg::gradcheck(c.fn, in);
    INFO(r1.str());
    CHECK(r1.pass);
    const tg::GradcheckResult r2 = tg::gradcheck_order2(c.fn, in);
    INFO(r2.str());
    CHECK(r2.pass);
  }
}

TEST_CASE("the C library's functions on Scalar: values, gradients and Hessians", "[ops][math]") {
  for (double v : {-0.7, 0.3, 0.8}) {
    check12([](S x) { return sin(x[0]) * cos(x[0] * 2.0) + tan(x[0]); }, {v});
    check12([](S x) { return asin(x[0]) + acos(x[0] * 0.5) * atan(x[0] * 3.0); }, {v});
    check12([](S x) { return sinh(x[0]) * cosh(x[0]) + asinh(x[0] * 4.0) + atanh(x[0]); }, {v});
    check12([](S x) { return erf(x[0]) * erfc(x[0] - 1.0) + expm1(x[0]) * log1p(x[0]); }, {v});
    check12([](S x) { return exp2(x[0]) + cbrt(x[0]) * x[0]; }, {v});
    check12([](S x) { return atan2(x[0], 0.4) + atan2(-0.3, x[0]) + hypot(x[0], 1.5); }, {v});
  }
  for (double v : {1.3, 2.7}) {
    check12([](S x) { return acosh(x[0]) + log2(x[0]) * log10(x[0] + 1.0); }, {v});
    check12([](S x) { return fmod(x[0] * x[0], 0.9) + fmod(5.0, x[0]); }, {v});
  }
  // The values are the C library's, bit for bit (volatile: not folded by the
  // compiler, whose constant folding rounds differently from the library).
  tg::Tape tape;
  tg::TapeScope scope(tape);
  volatile double va = 0.37, vb = -1.9;
  const double a = va, b = vb;
  tg::Scalar x = tg::var(a), y = tg::var(b);
  CHECK(sin(x).value() == std::sin(a));
  CHECK(cos(x).value() == std::cos(a));
  CHECK(erfc(y).value() == std::erfc(b));
  CHECK(log1p(x).value() == std::log1p(a));
  CHECK(cbrt(y).value() == std::cbrt(b));
  CHECK(atan2(x, y).value() == std::atan2(a, b));
  CHECK(hypot(x, y).value() == std::hypot(a, b));
  CHECK(fmod(y, x).value() == std::fmod(b, a));
  CHECK(floor(y).value() == -2.0);
  CHECK(ceil(y).value() == -1.0);
  CHECK(round(y).value() == -2.0);
  CHECK(trunc(y).value() == -1.0);
  CHECK(fmax(x, y).value() == a);
  CHECK(fmin(x, 0.1).value() == 0.1);
}

TEST_CASE("atan2's derivative is right in every quadrant and on the axes", "[ops][math]") {
  for (double ang = -3.0; ang < 3.2; ang += 0.5) {
    const double r = 1.7, yv = r * std::sin(ang), xv = r * std::cos(ang);
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::Scalar y = tg::var(yv), x = tg::var(xv);
    tg::Scalar f = atan2(y, x);
    f.backward();
    // d atan2(y, x) = (x dy - y dx) / r²: exact values.
    CHECK(y.grad() == Approx(xv / (r * r)).margin(1e-15));
    CHECK(x.grad() == Approx(-yv / (r * r)).margin(1e-15));
  }
  // On the axes (but for the negative x axis, its branch cut, where the value
  // jumps by 2π and central differences see the jump).
  for (const auto& [yv, xv] : {std::pair{0.0, 2.0}, {2.0, 0.0}, {-2.0, 0.0}}) {
    check12([](S v) { return atan2(v[0], v[1]); }, {yv, xv});
  }
}

TEST_CASE("stable forms keep their digits where the naive ones lose them", "[ops][math]") {
  // log1p and expm1 near 0: value and partial to full precision.
  auto [l, dl] = value_and_grad([](const tg::Scalar& x) { return log1p(x); }, 1e-12);
  CHECK(l == Approx(1e-12 - 0.5e-24).epsilon(1e-15));
  CHECK(dl == Approx(1.0 / (1.0 + 1e-12)).epsilon(1e-15));
  auto [e, de] = value_and_grad([](const tg::Scalar& x) { return expm1(x); }, 1e-12);
  CHECK(e == Approx(1e-12).epsilon(1e-11));
  CHECK(de == Approx(1.0 + 1e-12).epsilon(1e-15));
  // hypot without overflow: at (1e200, 1e200) sqrt(a² + b²) overflows, hypot does not.
  {
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::Scalar a = tg::var(1e200), b = tg::var(1e200);
    tg::Scalar h = hypot(a, b);
    h.backward();
    CHECK(std::isfinite(h.value()));
    CHECK(a.grad() == Approx(std::numbers::sqrt2 / 2));
    CHECK(b.grad() == Approx(std::numbers::sqrt2 / 2));
  }
  // erfc for large x: 1 - erf(x) is 0 in double, erfc is not.
  auto [c, dc] = value_and_grad([](const tg::Scalar& x) { return erfc(x); }, 10.0);
  CHECK(c > 0);
  CHECK(c == Approx(2.088487583762545e-45).epsilon(1e-12));
  CHECK(dc == Approx(-2.0 / std::sqrt(std::numbers::pi) * std::exp(-100.0)).epsilon(1e-12));
  // asinh's partial for large x: 1/sqrt(x² + 1) would overflow x².
  auto [s, ds] = value_and_grad([](const tg::Scalar& x) { return asinh(x); }, 1e300);
  CHECK(std::isfinite(s));
  CHECK(ds == Approx(1e-300).epsilon(1e-12));
}

TEST_CASE("edge policies: infinite partials, rounding, fmod, kinks of hypot and atan2",
          "[ops][math]") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(value_and_grad([](const tg::Scalar& x) { return asin(x); }, 1.0).second == inf);
  CHECK(value_and_grad([](const tg::Scalar& x) { return acos(x); }, -1.0).second == -inf);
  CHECK(value_and_grad([](const tg::Scalar& x) { return sqrt(x); }, 0.0).second == inf);
  CHECK(value_and_grad([](const tg::Scalar& x) { return cbrt(x); }, 0.0).second == inf);
  CHECK(value_and_grad([](const tg::Scalar& x) { return acosh(x); }, 1.0).second == inf);
  CHECK(value_and_grad([](const tg::Scalar& x) { return atanh(x); }, 1.0).second == inf);
  for (double v : {-2.5, -0.5, 0.0, 0.49, 1.5, 3.0}) {
    CHECK(value_and_grad([](const tg::Scalar& x) { return floor(x); }, v).second == 0.0);
    CHECK(value_and_grad([](const tg::Scalar& x) { return ceil(x); }, v).second == 0.0);
    CHECK(value_and_grad([](const tg::Scalar& x) { return round(x); }, v).second == 0.0);
    CHECK(value_and_grad([](const tg::Scalar& x) { return trunc(x); }, v).second == 0.0);
  }
  {  // fmod(a, b): partials 1 and -trunc(a/b)
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::Scalar a = tg::var(-7.5), b = tg::var(2.0);
    fmod(a, b).backward();
    CHECK(a.grad() == 1.0);
    CHECK(b.grad() == 3.0);  // -trunc(-3.75)
  }
  {  // at the origin, hypot and atan2 take partials 0 (no derivative exists)
    tg::Tape tape;
    tg::TapeScope scope(tape);
    tg::Scalar a = tg::var(0.0), b = tg::var(0.0);
    (hypot(a, b) + atan2(a, b)).backward();
    CHECK(a.grad() == 0.0);
    CHECK(b.grad() == 0.0);
  }
}

TEST_CASE("Real and Tensor compute every function with Scalar's rules", "[ops][math][real]") {
  const std::vector<double> pts{0.21, 0.47, 0.83};
  // Each unary function by name on all three types.
  const auto unary = [&](auto fs, auto fr, auto ft, double scale, double shift) {
    std::vector<double> xs;
    for (double p : pts) xs.push_back(p * scale + shift);
    std::vector<double> gs, gr;
    for (double x : xs) {
      tg::Tape tape;
      tg::TapeScope scope(tape);
      tg::Scalar a = tg::var(x);
      tg::Scalar ys = fs(a);
      ys.backward();
      gs.push_back(a.grad());
      tg::Tape tape2;
      tg::TapeScope scope2(tape2);
      tg::Real b = tg::var(x);
      tg::Real yr = fr(b * 1.0 + 0.0);  // an expression as the argument
      yr.backward();
      gr.push_back(b.grad());
      CHECK(yr.value() == ys.value());
    }
    CHECK(gs == gr);
    for (tg::DType dt : {tg::DType::f64, tg::DType::f32}) {
      tg::Tape tape;
      tg::TapeScope scope(tape);
      tg::Tensor t = tg::tensor(xs, {3}, {dt, true});
      tg::Tensor y = ft(t);
      tg::sum(y).backward();
      const std::vector<double> g = t.grads();
      for (std::size_t i = 0; i < xs.size(); ++i) {
        const double tol = dt == tg::DType::f64 ? 1e-15 : 1e-5;
        CHECK(g[i] == Approx(gs[i]).epsilon(tol).margin(tol));
      }
    }
  };
#define TG_UNARY(f, scale, shift)                                                     \
  SECTION(#f) {                                                                       \
    unary([](const tg::Scalar& x) { return tg::f(x); },                               \
          [](auto&& x) { return tg::f(std::forward<decltype(x)>(x)); },               \
          [](const tg::Tensor& x) { return tg::f(x); }, scale, shift);                \
  }
  TG_UNARY(sin, 3, -1)
  TG_UNARY(cos, 3, -1)
  TG_UNARY(tan, 2, -1)
  TG_UNARY(asin, 1.5, -0.7)
  TG_UNARY(acos, 1.5, -0.7)
  TG_UNARY(atan, 4, -2)
  TG_UNARY(sinh, 3, -1)
  TG_UNARY(cosh, 3, -1)
  TG_UNARY(asinh, 4, -2)
  TG_UNARY(acosh, 3, 1.1)
  TG_UNARY(atanh, 1.5, -0.7)
  TG_UNARY(erf, 3, -1)
  TG_UNARY(erfc, 3, -1)
  TG_UNARY(log1p, 3, -0.5)
  TG_UNARY(expm1, 3, -1)
  TG_UNARY(log2, 3, 0.1)
  TG_UNARY(log10, 3, 0.1)
  TG_UNARY(exp2, 3, -1)
  TG_UNARY(cbrt, 3, 0.1)
  TG_UNARY(floor, 3, -1)
  TG_UNARY(ceil, 3, -1)
  TG_UNARY(round, 3, -1)
  TG_UNARY(trunc, 3, -1)
#undef TG_UNARY
}

TEST_CASE("a sin or cos node gets its value and its partial from one sincos", "[ops][math]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  // The last pair is kept per thread: sin then cos of one value, the other
  // way round, -0 after +0, and a NaN all give the library's answers.
  for (double v : {0.0, 0.5, -2.0, 100.0, -0.0, 0.5, std::nan("")}) {
    tg::Scalar x = tg::var(v);
    tg::Scalar s = sin(x), c = cos(x);
    tg::Scalar c2 = cos(x), s2 = sin(x);
    if (std::isnan(v)) {
      CHECK(std::isnan(s.value()));
      CHECK(std::isnan(c2.value()));
      continue;
    }
    CHECK(std::bit_cast<std::uint64_t>(s.value()) == std::bit_cast<std::uint64_t>(std::sin(v)));
    CHECK(c.value() == std::cos(v));
    CHECK(s2.value() == s.value());
    CHECK(c2.value() == c.value());
    CHECK(tape.scalar_edges(s.index()).da == std::cos(v));
    CHECK(tape.scalar_edges(c.index()).da == -std::sin(v));
  }
}

TEST_CASE("the math ops replay, optimise and trace by name", "[ops][math][replay]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tg::Scalar x = tg::var(0.4).named("x"), y = tg::var(1.3).named("y");
  tg::Scalar f = atan2(sin(x) * y, hypot(x, y)) + erf(log1p(y)) - cbrt(fmod(y, 0.5) + x);
  tg::Function fn(tape, {x, y}, f);
  std::vector<double> g(2), g2(2);
  for (const auto& pt : {std::vector<double>{0.4, 1.3}, std::vector<double>{-0.9, 2.2}}) {
    const double v = fn.gradient(pt, g);
    tg::Tape fresh;
    tg::TapeScope s2(fresh);
    tg::Scalar a = tg::var(pt[0]), b = tg::var(pt[1]);
    tg::Scalar h = atan2(sin(a) * b, hypot(a, b)) + erf(log1p(b)) - cbrt(fmod(b, 0.5) + a);
    h.backward();
    CHECK(v == h.value());
    CHECK(g[0] == a.grad());
    CHECK(g[1] == b.grad());
  }
  fn.optimize();
  fn.gradient(std::vector<double>{-0.9, 2.2}, g2);
  CHECK(g2[0] == Approx(g[0]).epsilon(1e-14));
  CHECK(g2[1] == Approx(g[1]).epsilon(1e-14));
  const std::string t = tg::trace(f);
  CHECK(t.find("sin: local = cos x") != std::string::npos);
  CHECK(t.find("atan2: local = b/(a²+b²)") != std::string::npos);
  CHECK(t.find("atan2: local = -a/(a²+b²)") != std::string::npos);
  CHECK(tg::to_dot(f).find("hypot") != std::string::npos);
}
