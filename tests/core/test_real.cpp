// Real: statements recorded as weighted sums (ScalarOp::lin). Every test
// compares with the same code run on Scalars (op by op), with central
// differences, or with exact weights worked out by hand.
#include <cmath>
#include <type_traits>

#include <tapegrad/inspect.hpp>

#include "helpers.hpp"

namespace {

using tg::Real;

// Whether an lvalue expression E can be used in another expression.
template <class E>
constexpr bool can_add = requires(E& x, const Real& r) {
  x + r;
};
template <class E>
constexpr bool can_scale = requires(E& x) {
  x * 2.0;
};

// A small Lax-Wendroff stencil (the benchmark's, 12 points, 30 steps),
// generic over the number type.
template <class T>
T stencil(std::vector<T> q, int steps = 30) {
  const double c = 0.125;
  const std::size_t nx = q.size();
  std::vector<T> flux(nx);
  for (int s = 0; s < steps; ++s) {
    for (std::size_t i = 0; i + 1 < nx; ++i)
      flux[i] = 0.5 * c * (q[i] + q[i + 1] + c * (q[i] - q[i + 1]));
    for (std::size_t i = 1; i + 1 < nx; ++i) q[i] += flux[i - 1] - flux[i];
    q[0] = q[nx - 2];
    q[nx - 1] = q[1];
  }
  T sum = q[0];
  for (std::size_t i = 1; i < nx; ++i) sum += q[i];
  return 0.1 * sum;
}

// A nonlinear statement mix: products, quotients, exp, log, tanh, max, pow,
// numbers on both sides, and a repeated operand.
template <class T>
T mixed(const std::vector<T>& x) {
  T a = 2.0 * x[0] - x[1] / 4.0 + 1.5;
  T b = x[0] * x[1] + exp(x[2] - 0.5 * x[0]) - (3.0 - x[2]);
  T c = a / (b + 10.0) + tanh(a - b) * x[2];
  T d = max(c, x[1] - 1.0) + pow(x[0] * x[0] + 1.0, 1.5) - log(x[2] * x[2] + 2.0);
  d -= -x[1] + x[1] * 0.25;
  d = d * 0.5;
  d += a;
  return d * d - sqrt(b * b + 1.0) + 1.0 / (a + 4.0);
}

std::vector<double> grad_of(const std::vector<double>& x0, bool real, std::size_t* nodes = nullptr,
                            double* value = nullptr, int which = 0) {
  tg::Tape tape;
  std::vector<tg::Scalar> in;
  for (double v : x0) in.push_back(tape.variable(v));
  tg::Scalar out;
  if (real) {
    std::vector<Real> r(in.begin(), in.end());
    out = which == 0 ? stencil(r) : mixed(r);
  } else {
    out = which == 0 ? stencil(in) : mixed(in);
  }
  tape.backward(out);
  if (nodes) *nodes = tape.scalar_count();
  if (value) *value = out.value();
  std::vector<double> g;
  for (const tg::Scalar& s : in) g.push_back(s.grad());
  return g;
}

std::vector<double> stencil_start() {
  std::vector<double> q(12);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = 1.5 + 0.5 * std::sin(0.6 * double(i));
  return q;
}

}  // namespace

TEST_CASE("a linear statement is one weighted-sum node with the worked-out weights", "[real]") {
  tg::Tape tape;
  const Real q0 = tape.variable(1.25), q1 = tape.variable(-0.5);
  const double c = 0.125;
  const std::size_t before = tape.scalar_count();
  const Real f = 0.5 * c * (q0 + q1 + c * (q0 - q1));
  REQUIRE(tape.scalar_count() == before + 1);
  REQUIRE(f.scalar().op() == tg::ScalarOp::lin);
  const tg::ScalarEdges& e = tape.scalar_edges(f.index());
  CHECK(e.da == 0.5 * c * (1 + c));
  CHECK(e.db == 0.5 * c * (1 - c));
  CHECK(f.value() == Approx(0.5 * c * (1.25 - 0.5 + c * 1.75)).epsilon(1e-15));
  f.backward();
  CHECK(q0.grad() == 0.5 * c * (1 + c));
  CHECK(q1.grad() == 0.5 * c * (1 - c));
}

TEST_CASE("Real counts operands, numbers and plain copies as it should", "[real]") {
  tg::Tape tape;
  const Real a = tape.variable(2), b = tape.variable(3), d = tape.variable(5);
  std::size_t n = tape.scalar_count();
  const auto added = [&] {
    const std::size_t k = tape.scalar_count() - n;
    n = tape.scalar_count();
    return k;
  };
  Real x = a + 0.0;  // a itself: no node
  CHECK(added() == 0);
  CHECK(x.index() == a.index());
  x = a + b - d;  // three operands: two nodes
  CHECK(added() == 2);
  CHECK(x.value() == 0.0);
  x = 2.0 * a + 1.0;  // one operand and a number: one node
  CHECK(added() == 1);
  CHECK(x.value() == 5.0);
  x = a + b + 1.0;  // two operands and a number: two nodes
  CHECK(added() == 2);
  CHECK(x.value() == 6.0);
  x = a - a;  // merged to weight 0: one node, gradient 0
  CHECK(added() == 1);
  CHECK(x.value() == 0.0);
  x = a * b;  // nonlinear: the usual mul node
  CHECK(added() == 1);
  CHECK(x.scalar().op() == tg::ScalarOp::mul);
  x = 10.0 - a / 4.0;
  CHECK(added() == 1);
  CHECK(x.value() == 9.5);
}

TEST_CASE("Real gives the gradients of the op-by-op Scalar recording", "[real]") {
  SECTION("the Lax-Wendroff stencil, with fewer than half the nodes") {
    std::size_t ns = 0, nr = 0;
    double vs = 0, vr = 0;
    const auto gs = grad_of(stencil_start(), false, &ns, &vs);
    const auto gr = grad_of(stencil_start(), true, &nr, &vr);
    CHECK(vr == Approx(vs).epsilon(1e-13));
    require_close(gr, gs, 1e-13);
    CHECK(nr * 2 < ns);
  }
  SECTION("a nonlinear mix, also against central differences") {
    const std::vector<double> x0{0.7, -1.3, 0.4};
    double vs = 0, vr = 0;
    const auto gs = grad_of(x0, false, nullptr, &vs, 1);
    const auto gr = grad_of(x0, true, nullptr, &vr, 1);
    CHECK(vr == Approx(vs).epsilon(1e-13));
    require_close(gr, gs, 1e-12);
    for (std::size_t k = 0; k < x0.size(); ++k) {
      const double h = 1e-6;
      std::vector<double> xp = x0, xm = x0;
      xp[k] += h, xm[k] -= h;
      double fp = 0, fm = 0;
      grad_of(xp, true, nullptr, &fp, 1);
      grad_of(xm, true, nullptr, &fm, 1);
      CHECK(gr[k] == Approx((fp - fm) / (2 * h)).epsilon(1e-6).margin(1e-7));
    }
  }
}

TEST_CASE("a Real recording replays, optimises, and has Hessians", "[real][replay]") {
  const auto record = [](bool real) {
    return tg::Function::record(std::vector<double>{0.7, -1.3, 0.4}, [real](auto in) {
      std::vector<tg::Scalar> x(in.begin(), in.end());
      if (!real) return mixed(x);
      std::vector<Real> r(x.begin(), x.end());
      return tg::Scalar(mixed(r));
    });
  };
  tg::Function ops = record(false), lin = record(true), fast = record(true);
  fast.optimize();
  std::vector<double> g1(3), g2(3), g3(3);
  for (const auto& x : {std::vector<double>{0.7, -1.3, 0.4}, std::vector<double>{0.2, 0.9, -0.6},
                        std::vector<double>{-1.1, 0.3, 1.7}}) {
    const double v1 = ops.gradient(x, g1), v2 = lin.gradient(x, g2), v3 = fast.gradient(x, g3);
    CHECK(v2 == Approx(v1).epsilon(1e-13));
    CHECK(v3 == Approx(v1).epsilon(1e-13));
    require_close(g2, g1, 1e-12);
    require_close(g3, g1, 1e-12);
  }
  // The stencil optimised: lin nodes make fixed-weight statements.
  tg::Function st = tg::Function::record(stencil_start(), [](auto in) {
    std::vector<Real> q(in.begin(), in.end());
    return tg::Scalar(stencil(q));
  });
  std::vector<double> gq(12), gq2(12);
  st.gradient(stencil_start(), gq);
  const tg::OptimizeStats s = st.optimize();
  CHECK(s.fixed > 0);
  st.gradient(stencil_start(), gq2);
  require_close(gq2, gq, 1e-13);
  require_close(gq, grad_of(stencil_start(), false), 1e-13);

  // Second order: the Hessian of the mix, Real against Scalar.
  tg::Tape ta, tb;
  std::vector<tg::Scalar> xa, xb;
  for (double v : {0.7, -1.3, 0.4}) xa.push_back(ta.variable(v)), xb.push_back(tb.variable(v));
  const tg::Scalar fa = mixed(xa);
  const tg::Scalar fb = tg::Scalar(mixed(std::vector<Real>(xb.begin(), xb.end())));
  const auto ha = tg::hessian(fa, {xa[0], xa[1], xa[2]});
  const auto hb = tg::hessian(fb, {xb[0], xb[1], xb[2]});
  require_close(hb, ha, 1e-11);
}

TEST_CASE("lin nodes inspect like any op", "[real][inspect]") {
  tg::Tape tape;
  const Real a = tape.variable(1.5), b = tape.variable(-2);
  const Real y = tanh(3.0 * a - 0.5 * b + 1.0) * a;
  y.backward();
  const std::string dot = tg::to_dot(y);
  CHECK(dot.find("lin(w 3, -0.5)") != std::string::npos);
  const std::string tr = tg::trace(y);
  CHECK(tr.find("lin: distributes") != std::string::npos);
  const tg::NodeCheckResult r = tg::check_nodes(y);
  INFO(r.str());
  CHECK(r.pass);
  bool saw_lin = false;
  for (const auto& n : r.nodes) saw_lin = saw_lin || (n.op == "lin" && n.status == "pass");
  CHECK(saw_lin);
}

TEST_CASE("Real misuse is an error, never a wrong number", "[real][errors]") {
  // An expression kept with auto cannot be used: it holds references to the
  // statement's temporaries.
  tg::Tape tape;
  const Real a = tape.variable(1), b = tape.variable(2);
  auto e = a + b;
  using E = decltype(e);
  STATIC_REQUIRE(!std::is_constructible_v<Real, E&>);
  STATIC_REQUIRE(!std::is_convertible_v<E&, Real>);
  STATIC_REQUIRE(!can_add<E>);
  STATIC_REQUIRE(!can_scale<E>);
  STATIC_REQUIRE(can_add<Real>);
  STATIC_REQUIRE(std::is_constructible_v<Real, E&&>);
  (void)e;

  SECTION("operands on two tapes") {
    tg::Tape other;
    const Real z = other.variable(3);
    REQUIRE_THROWS_WITH(Real(a + z), Catch::Contains("Real arithmetic") && Catch::Contains("tape"));
  }
  SECTION("a stale Real after clear()") {
    tape.clear();
    tg::Tape fresh;
    REQUIRE_THROWS_WITH(Real(a + 1.0), Catch::Contains("stale") || Catch::Contains("cleared"));
  }
  SECTION("an empty Real") {
    Real empty;
    REQUIRE_THROWS(Real(empty - a));
  }
  SECTION("anomaly mode names the statement's NaN") {
    tg::DetectAnomaly on(tape);
    REQUIRE_THROWS_WITH(Real(a / 0.0 + b), Catch::Contains("(lin)") && Catch::Contains("inf"));
  }
  SECTION("NoGrad records a constant") {
    tg::NoGrad off(tape);
    const Real k = 2.0 * a + b;
    CHECK(k.scalar().op() == tg::ScalarOp::constant);
    CHECK(k.value() == 4.0);
  }
}

TEST_CASE("the optimiser folds constant operands of lin nodes", "[real][optimize]") {
  // k is a constant on the tape: every lin node that reads it has one
  // operand folded into its number; weights of 1 and -1 become add and sub.
  const auto f = [](auto in) {
    const Real x = in[0], y = in[1];
    const Real k = in[0].tape().constant(0.75);
    Real r = 2.0 * x + 3.0 * k + 1.0;  // lin(x, k), then + 1
    Real s = y - k;                    // a unit-weight sub with a folded side
    Real t = 0.5 * r - 4.0 * s + k;    // three operands, one of them folded
    Real u = r * s + t - x;            // a product, then a unit-weight chain
    return tg::Scalar(Real(u + tanh(t) * 0.25));
  };
  const std::vector<double> x0{0.4, -0.9};
  tg::Function plain = tg::Function::record(x0, f), fast = tg::Function::record(x0, f);
  fast.optimize();
  std::vector<double> g1(2), g2(2);
  for (const auto& x : {x0, std::vector<double>{1.3, 0.2}, std::vector<double>{-2.0, 3.5}}) {
    const double v1 = plain.gradient(x, g1), v2 = fast.gradient(x, g2);
    // By hand: r = 2x + 3.25, s = y - 0.75, t = 0.5r - 4s + 0.75,
    // u = rs + t - x; f = u + tanh(t) / 4.
    const double r = 2 * x[0] + 3.25, s = x[1] - 0.75, t = 0.5 * r - 4 * s + 0.75;
    const double want = r * s + t - x[0] + std::tanh(t) * 0.25;
    const double dt = 1 + 0.25 * (1 - std::tanh(t) * std::tanh(t));
    CHECK(v1 == Approx(want).epsilon(1e-13));
    CHECK(v2 == Approx(want).epsilon(1e-13));
    require_close(g1, {2 * s + dt * 1.0 - 1, r - 4 * dt}, 1e-12);
    require_close(g2, g1, 1e-12);
  }
}

namespace {
// A random straight-line program: each statement combines earlier values in
// one of several forms (linear, mixed, nonlinear, with repeated operands and
// numbers), generated once and then run on Scalar or on Real.
struct Stmt {
  int form;
  std::size_t i, j, k;
  double w, c;
};
std::vector<Stmt> random_program(std::uint64_t seed, std::size_t inputs, int n) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  std::vector<Stmt> p;
  for (int s = 0; s < n; ++s) {
    std::uniform_int_distribution<std::size_t> pick(0, inputs + static_cast<std::size_t>(s) - 1);
    p.push_back({static_cast<int>(rng() % 9), pick(rng), pick(rng), pick(rng), u(rng), u(rng)});
  }
  return p;
}
template <class T>
T run_program(const std::vector<Stmt>& prog, std::vector<T> v) {
  for (const Stmt& s : prog) {
    const T &p = v[s.i], &q = v[s.j], &r = v[s.k];
    T x;
    switch (s.form) {
      case 0:
        x = s.w * p + s.c * q;
        break;
      case 1:
        x = p + q - r;
        break;
      case 2:
        x = s.w * (p - q) + s.c;
        break;
      case 3:
        x = tanh(p) * q + s.w * r;
        break;
      case 4:
        x = tanh(s.w * p + q) * r;
        break;
      case 5:
        x = p / (2.0 + s.w * s.w) + s.c;
        break;
      case 6:
        x = max(p, q) + s.w * p;
        break;
      case 7:
        x = p - p * s.w + q;
        break;
      default:
        x = -(p + s.c);
        break;
    }
    v.push_back(x);
  }
  T out = v.back();
  for (std::size_t k = v.size() - 4; k + 1 < v.size(); ++k) out = out + 0.5 * v[k];
  return out;
}
}  // namespace

TEST_CASE("random programs: Real matches Scalar, replayed, optimised and to second order",
          "[real][optimize][higher]") {
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    INFO("seed " << seed);
    const auto prog = random_program(seed, 4, 30);
    const std::vector<double> x0{0.3, -0.8, 1.1, 0.45}, x1{-0.6, 0.2, 0.7, -1.2};
    const auto make = [&](bool real) {
      return tg::Function::record(x0, [&](auto in) {
        std::vector<tg::Scalar> s(in.begin(), in.end());
        if (!real) return run_program(prog, s);
        return tg::Scalar(run_program(prog, std::vector<Real>(s.begin(), s.end())));
      });
    };
    tg::Function fs = make(false), fr = make(true), fo = make(true);
    REQUIRE(fr.tape().scalar_count() < fs.tape().scalar_count());
    fo.optimize();
    std::vector<double> gs(4), gr(4), go(4);
    for (const auto& x : {x0, x1}) {
      const double vs = fs.gradient(x, gs), vr = fr.gradient(x, gr), vo = fo.gradient(x, go);
      REQUIRE(vr == Approx(vs).epsilon(1e-12).margin(1e-12));
      REQUIRE(vo == Approx(vs).epsilon(1e-12).margin(1e-12));
      require_close(gr, gs, 1e-10);
      require_close(go, gs, 1e-10);
    }
    // Hessian-vector products of the three, along one direction.
    const std::vector<double> dir{0.5, -1.0, 0.25, 2.0};
    std::vector<double> hs(4), hr(4), ho(4);
    fs.hvp(x1, dir, hs), fr.hvp(x1, dir, hr), fo.hvp(x1, dir, ho);
    require_close(hr, hs, 1e-9);
    require_close(ho, hs, 1e-9);
  }
}
