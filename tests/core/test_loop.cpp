// Checkpointed loops (loop.hpp): the gradient equals the one-tape gradient
// for many n and s, the recomputation equals revolve's optimum, at most s
// states are held, and the tape never holds more than one step.
#include <tapegrad/loop.hpp>

#include <cmath>
#include <map>

#include "helpers.hpp"

namespace {
// Lax-Wendroff advection on a periodic grid, with the Courant number as a
// parameter, and a nonlinear objective.
void lw_step(std::span<tg::Scalar> q, std::span<const tg::Scalar> p, std::int64_t) {
  const std::size_t nx = q.size();
  const tg::Scalar& c = p[0];
  std::vector<tg::Scalar> flux(nx - 1);
  for (std::size_t i = 0; i + 1 < nx; ++i)
    flux[i] = 0.5 * c * (q[i] + q[i + 1] + c * (q[i] - q[i + 1]));
  for (std::size_t i = 1; i + 1 < nx; ++i) q[i] = q[i] + flux[i - 1] - flux[i];
  q[0] = q[nx - 2];
  q[nx - 1] = q[1];
}
tg::Scalar lw_objective(std::span<const tg::Scalar> q, std::span<const tg::Scalar>) {
  tg::Scalar s = 0.0;
  for (const tg::Scalar& x : q) s = s + sin(x) * x;
  return s;
}
std::vector<double> lw_initial(int nx) {
  std::vector<double> q(nx);
  for (int i = 0; i < nx; ++i) q[i] = 1.5 + 0.5 * std::sin(2 * 3.14159265358979 * i / (nx - 1.5));
  return q;
}
// A brute-force check of the closed form on small cases: the least cost
// over every first split, by dynamic programming.
std::uint64_t brute(std::int64_t l, std::int64_t s) {
  static std::map<std::pair<std::int64_t, std::int64_t>, std::uint64_t> memo;
  if (l <= 1) return 0;
  if (s <= 1) return static_cast<std::uint64_t>(l * (l - 1) / 2);
  if (const auto it = memo.find({l, s}); it != memo.end()) return it->second;
  std::uint64_t best = ~0ull;
  for (std::int64_t k = 1; k < l; ++k)
    best = std::min<std::uint64_t>(best, k + brute(l - k, s - 1) + brute(k, s));
  return memo[{l, s}] = best;
}
}  // namespace

TEST_CASE("revolve's closed form is the least recomputation", "[loop]") {
  for (std::int64_t l = 1; l <= 30; ++l)
    for (int s = 1; s <= 6; ++s) {
      INFO("n " << l << ", s " << s);
      CHECK(tg::checkpoint_advances(l, s) == brute(l, s));
    }
  CHECK(tg::checkpoint_advances(10, 10) == 9);  // every state stored: one forward pass
  // r = 8: C(27, 20) < 10^6 <= C(28, 20); 8 n - C(28, 21)
  CHECK(tg::checkpoint_advances(1'000'000, 20) == 8'000'000 - 1'184'040);
}

TEST_CASE("a checkpointed loop gives the one-tape gradient with the least recomputation",
          "[loop]") {
  const std::vector<double> q0 = lw_initial(12), p{0.125};
  for (std::int64_t n : {1, 2, 7, 30}) {
    const tg::LoopGradient ref = tg::taped_gradient(q0, p, n, lw_step, lw_objective);
    for (int s : {1, 2, 3, 5, 40}) {
      INFO("n " << n << ", s " << s);
      const tg::LoopGradient g = tg::checkpointed_gradient(q0, p, n, s, lw_step, lw_objective);
      CHECK(g.value == ref.value);  // the same arithmetic forward
      REQUIRE(g.grad_state.size() == ref.grad_state.size());
      for (std::size_t i = 0; i < g.grad_state.size(); ++i)
        CHECK(g.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-12).margin(1e-15));
      CHECK(g.grad_params[0] == Approx(ref.grad_params[0]).epsilon(1e-12));
      CHECK(g.advances == tg::checkpoint_advances(n, s));
      CHECK(g.taped == static_cast<std::uint64_t>(n));
      CHECK(g.max_snapshots <= static_cast<std::size_t>(s));
    }
  }
  // And against finite differences of the parameter.
  const auto value = [&](double c) {
    return tg::checkpointed_gradient(q0, std::vector<double>{c}, 30, 3, lw_step, lw_objective)
        .value;
  };
  const double h = 1e-6, fd = (value(0.125 + h) - value(0.125 - h)) / (2 * h);
  CHECK(tg::checkpointed_gradient(q0, p, 30, 3, lw_step, lw_objective).grad_params[0] ==
        Approx(fd).epsilon(1e-6));
}

TEST_CASE("a checkpointed loop's tape holds one step however long the loop", "[loop][memory]") {
  const std::vector<double> q0 = lw_initial(100), p{0.125};
  const tg::LoopGradient one = tg::checkpointed_gradient(q0, p, 1, 1, lw_step, lw_objective);
  const tg::LoopGradient many = tg::checkpointed_gradient(q0, p, 500, 8, lw_step, lw_objective);
  const tg::LoopGradient all = tg::taped_gradient(q0, p, 500, lw_step, lw_objective);
  CHECK(many.peak_tape_bytes <= one.peak_tape_bytes);
  CHECK(all.peak_tape_bytes > 100 * many.peak_tape_bytes);
  for (std::size_t i = 0; i < q0.size(); ++i)
    CHECK(many.grad_state[i] == Approx(all.grad_state[i]).epsilon(1e-11).margin(1e-14));
}

TEST_CASE("checkpointed loops refuse what they cannot do", "[loop][errors]") {
  const std::vector<double> q0{1, 2, 3}, p{0.1};
  CHECK_THROWS_WITH(tg::checkpointed_gradient(q0, p, 0, 2, lw_step, lw_objective),
                    Catch::Contains("at least one step"));
  CHECK_THROWS_WITH(tg::checkpointed_gradient(q0, p, 5, 0, lw_step, lw_objective),
                    Catch::Contains("at least 1 (the initial state)"));
  const tg::LoopStep grows = [](std::span<tg::Scalar>, std::span<const tg::Scalar>, std::int64_t) {
    throw tg::Error("step failed");
  };
  CHECK_THROWS_WITH(tg::checkpointed_gradient(q0, p, 5, 2, grows, lw_objective),
                    Catch::Contains("step failed"));
}

TEST_CASE("an online checkpointed loop finds its length and gives the one-tape gradient",
          "[loop]") {
  const std::vector<double> q0 = lw_initial(12), p{0.125};
  for (std::int64_t n : {1, 2, 7, 30, 200}) {
    const tg::LoopGradient ref = tg::taped_gradient(q0, p, n, lw_step, lw_objective);
    const tg::LoopDone after_n = [n](std::span<const double>, std::int64_t steps) {
      return steps == n;
    };
    for (int s : {1, 2, 3, 5, 40}) {
      INFO("n " << n << ", s " << s);
      const tg::LoopGradient g =
          tg::checkpointed_gradient_online(q0, p, s, lw_step, after_n, lw_objective);
      CHECK(g.value == ref.value);
      CHECK(g.taped == static_cast<std::uint64_t>(n));
      REQUIRE(g.grad_state.size() == ref.grad_state.size());
      for (std::size_t i = 0; i < g.grad_state.size(); ++i)
        CHECK(g.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-12).margin(1e-15));
      CHECK(g.grad_params[0] == Approx(ref.grad_params[0]).epsilon(1e-12));
      CHECK(g.max_snapshots <= static_cast<std::size_t>(s));
      // Never below revolve's optimum for the same n and s; at most one
      // more forward run than it plus the even spacing's cost (here within
      // 2x the optimum and n).
      const std::uint64_t best = tg::checkpoint_advances(n, s);
      CHECK(g.advances >= best);
      CHECK(g.advances <= 2 * best + static_cast<std::uint64_t>(n));
    }
  }
  // A loop that ends on an event of the state: q[0] has risen past a level.
  const tg::LoopDone event = [](std::span<const double> q, std::int64_t) { return q[0] > 1.9; };
  const tg::LoopGradient g =
      tg::checkpointed_gradient_online(q0, p, 4, lw_step, event, lw_objective);
  const tg::LoopGradient ref =
      tg::taped_gradient(q0, p, static_cast<std::int64_t>(g.taped), lw_step, lw_objective);
  CHECK(g.taped > 1);
  for (std::size_t i = 0; i < g.grad_state.size(); ++i)
    CHECK(g.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-12).margin(1e-15));
  // A loop that never ends is an error, not a hang.
  const tg::LoopDone never = [](std::span<const double>, std::int64_t) { return false; };
  CHECK_THROWS_WITH(tg::checkpointed_gradient_online(q0, p, 4, lw_step, never, lw_objective, 50),
                    Catch::Contains("did not hold after 50 steps"));
}

TEST_CASE("H v through a checkpointed loop equals the one-tape H v and finite differences",
          "[loop][higher]") {
  const std::vector<double> q0 = lw_initial(10), p{0.125};
  std::vector<double> vq(q0.size()), vp{0.3};
  for (std::size_t i = 0; i < vq.size(); ++i) vq[i] = std::cos(0.7 * static_cast<double>(i));
  for (std::int64_t n : {1, 2, 7, 25}) {
    const tg::LoopHvp ref = tg::taped_hvp(q0, p, n, lw_step, lw_objective, vq, vp);
    for (int s : {1, 2, 3, 40}) {
      INFO("n " << n << ", s " << s);
      const tg::LoopHvp h = tg::checkpointed_hvp(q0, p, n, s, lw_step, lw_objective, vq, vp);
      CHECK(h.value == ref.value);
      CHECK(h.advances == tg::checkpoint_advances(n, s));
      CHECK(h.max_snapshots <= static_cast<std::size_t>(s));
      REQUIRE(h.hv_state.size() == ref.hv_state.size());
      for (std::size_t i = 0; i < h.hv_state.size(); ++i) {
        CHECK(h.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-11).margin(1e-14));
        CHECK(h.hv_state[i] == Approx(ref.hv_state[i]).epsilon(1e-10).margin(1e-13));
      }
      CHECK(h.hv_params[0] == Approx(ref.hv_params[0]).epsilon(1e-10).margin(1e-13));
    }
    // The one-tape H v against central differences of the gradient along v.
    const double e = 1e-6;
    std::vector<double> qa = q0, qb = q0;
    for (std::size_t i = 0; i < q0.size(); ++i) qa[i] += e * vq[i], qb[i] -= e * vq[i];
    const tg::LoopGradient ga =
        tg::taped_gradient(qa, std::vector<double>{p[0] + e * vp[0]}, n, lw_step, lw_objective);
    const tg::LoopGradient gb =
        tg::taped_gradient(qb, std::vector<double>{p[0] - e * vp[0]}, n, lw_step, lw_objective);
    for (std::size_t i = 0; i < q0.size(); ++i)
      CHECK(ref.hv_state[i] ==
            Approx((ga.grad_state[i] - gb.grad_state[i]) / (2 * e)).epsilon(1e-5).margin(1e-7));
    CHECK(ref.hv_params[0] ==
          Approx((ga.grad_params[0] - gb.grad_params[0]) / (2 * e)).epsilon(1e-5).margin(1e-7));
  }
  CHECK_THROWS_WITH(tg::checkpointed_hvp(q0, p, 5, 2, lw_step, lw_objective, vp, vp),
                    Catch::Contains("the direction has 1 state and 1 parameter entries"));
}

TEST_CASE("a checkpointed loop can replay its compiled step instead of running its code",
          "[loop][replay]") {
  const std::vector<double> q0 = lw_initial(12), p{0.125};
  const tg::LoopOptions replay{.replay = true};
  for (std::int64_t n : {1, 2, 7, 30}) {
    const tg::LoopGradient ref = tg::taped_gradient(q0, p, n, lw_step, lw_objective);
    for (int s : {1, 3, 40}) {
      INFO("n " << n << ", s " << s);
      const tg::LoopGradient g =
          tg::checkpointed_gradient(q0, p, n, s, lw_step, lw_objective, replay);
      CHECK(g.value == Approx(ref.value).epsilon(1e-14));
      for (std::size_t i = 0; i < g.grad_state.size(); ++i)
        CHECK(g.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-12).margin(1e-15));
      CHECK(g.grad_params[0] == Approx(ref.grad_params[0]).epsilon(1e-12));
      CHECK(g.advances == tg::checkpoint_advances(n, s));
      CHECK(g.taped == static_cast<std::uint64_t>(n));
    }
  }
  const tg::LoopDone after = [](std::span<const double>, std::int64_t k) { return k == 17; };
  const tg::LoopGradient online =
      tg::checkpointed_gradient_online(q0, p, 3, lw_step, after, lw_objective, 1000, replay);
  const tg::LoopGradient ref = tg::taped_gradient(q0, p, 17, lw_step, lw_objective);
  for (std::size_t i = 0; i < online.grad_state.size(); ++i)
    CHECK(online.grad_state[i] == Approx(ref.grad_state[i]).epsilon(1e-12).margin(1e-15));
  // A step whose recorded branch flips is reported, not replayed wrongly.
  const tg::LoopStep clamp = [](std::span<tg::Scalar> q, std::span<const tg::Scalar>,
                                std::int64_t) {
    for (tg::Scalar& x : q) x = x < 1.7 ? x * 1.01 : x * 0.99;
  };
  CHECK_THROWS_AS(tg::checkpointed_gradient(q0, p, 40, 4, clamp, lw_objective, replay),
                  tg::BranchChanged);
}

// ---- tensor states ----
namespace {
// A reaction-diffusion step on a grid of m points: u += kappa (L u) +
// dt tanh(u) r, with L the periodic Laplacian as a matrix, and a second
// state tensor v that follows u.
tg::TensorLoopStep heat_step(std::int64_t m) {
  std::vector<double> L(static_cast<std::size_t>(m * m), 0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    L[static_cast<std::size_t>(i * m + i)] = -2;
    L[static_cast<std::size_t>(i * m + (i + 1) % m)] = 1;
    L[static_cast<std::size_t>(i * m + (i + m - 1) % m)] = 1;
  }
  return [L, m](std::span<tg::Tensor> st, std::span<const tg::Tensor> p, std::int64_t) {
    const tg::Tensor lap = tg::matmul(st[0], tg::tensor(L, {m, m}));
    tg::Tensor u = st[0] + p[0] * lap + 0.01 * tg::tanh(st[0]) * p[1];
    st[1] = 0.9 * st[1] + 0.1 * u;
    st[0] = u;
  };
}
tg::Tensor heat_objective(std::span<const tg::Tensor> st, std::span<const tg::Tensor>) {
  return tg::sum(st[0] * st[0]) + tg::sum(tg::sin(st[1]));
}
std::vector<tg::TensorValue> heat_state(std::int64_t m) {
  std::vector<double> u(static_cast<std::size_t>(m)), v(static_cast<std::size_t>(m), 0.1);
  for (std::int64_t i = 0; i < m; ++i)
    u[static_cast<std::size_t>(i)] = std::sin(0.3 * static_cast<double>(i)) + 0.5;
  return {{tg::Shape{1, m}, u}, {tg::Shape{1, m}, v}};
}
const std::vector<tg::TensorValue> kHeatParams{{tg::Shape{}, {0.2}},
                                               {tg::Shape{1, 16}, std::vector<double>(16, 0.7)}};
}  // namespace

TEST_CASE("a checkpointed loop over tensor states gives the one-tape gradient", "[loop][tensor]") {
  const auto state0 = heat_state(16);
  const auto step = heat_step(16);
  for (const auto& [n, s] :
       std::vector<std::pair<std::int64_t, int>>{{1, 1}, {7, 1}, {10, 3}, {25, 4}, {12, 20}}) {
    INFO("n = " << n << ", s = " << s);
    const tg::TensorLoopGradient ref =
        tg::taped_gradient(state0, kHeatParams, n, step, heat_objective);
    const tg::TensorLoopGradient g =
        tg::checkpointed_gradient(state0, kHeatParams, n, s, step, heat_objective);
    CHECK(g.value == Approx(ref.value).epsilon(1e-13));
    REQUIRE(g.grad_state.size() == 2);
    REQUIRE(g.grad_params.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) {
      require_close(g.grad_state[k], ref.grad_state[k], 1e-12);
      require_close(g.grad_params[k], ref.grad_params[k], 1e-12);
    }
    CHECK(g.advances == tg::checkpoint_advances(n, s));
    CHECK(g.taped == static_cast<std::uint64_t>(n));
    CHECK(g.max_snapshots <= static_cast<std::size_t>(std::min<std::int64_t>(s, n)));
  }
  // One step's tape, however long the loop.
  const auto long_ref = tg::taped_gradient(state0, kHeatParams, 200, step, heat_objective);
  const auto long_ck =
      tg::checkpointed_gradient(state0, kHeatParams, 200, 10, step, heat_objective);
  CHECK(long_ck.peak_tape_bytes * 50 < long_ref.peak_tape_bytes);
  // And the gradient agrees with finite differences in the diffusion coefficient.
  const double eps = 1e-6;
  auto params = kHeatParams;
  params[0].values[0] += eps;
  const double up = tg::taped_gradient(state0, params, 25, step, heat_objective).value;
  params[0].values[0] -= 2 * eps;
  const double down = tg::taped_gradient(state0, params, 25, step, heat_objective).value;
  const auto g = tg::checkpointed_gradient(state0, kHeatParams, 25, 4, step, heat_objective);
  CHECK(g.grad_params[0][0] == Approx((up - down) / (2 * eps)).epsilon(1e-6));
}

TEST_CASE("tensor-state loops refuse what they cannot do", "[loop][tensor][errors]") {
  const auto state0 = heat_state(16);
  const auto step = heat_step(16);
  auto bad_values = state0;
  bad_values[0].values.pop_back();
  CHECK_THROWS_WITH(tg::checkpointed_gradient(bad_values, kHeatParams, 5, 2, step, heat_objective),
                    Catch::Contains("state tensor 0 has shape (1x16) (16 elements) but 15 values"));
  const tg::TensorLoopStep grow = [](std::span<tg::Tensor> st, std::span<const tg::Tensor>,
                                     std::int64_t) {
    st[0] = tg::concat({st[0], st[0]}, 1);
  };
  CHECK_THROWS_WITH(tg::checkpointed_gradient(state0, kHeatParams, 5, 2, grow, heat_objective),
                    Catch::Contains("must stay float64 of shape (1x16)"));
  const tg::TensorLoopObjective wide = [](std::span<const tg::Tensor> st,
                                          std::span<const tg::Tensor>) { return st[0]; };
  CHECK_THROWS_WITH(tg::checkpointed_gradient(state0, kHeatParams, 3, 2, step, wide),
                    Catch::Contains("one-element tensor"));
  CHECK_THROWS_WITH(tg::checkpointed_gradient(state0, kHeatParams, 3, 0, step, heat_objective),
                    Catch::Contains("0 snapshots"));
}
