// Replicas: a batch split over threads, each recording on its own tape into
// gradient buffers of its own, summed before the update. The summed gradient
// must be the whole batch's mean gradient, whatever the split.
#include <tapegrad/nn.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {

// Every parameter's gradient after the first step's backward.
struct FirstGradients : nn::Callback {
  std::vector<std::vector<double>> grads;
  void on_after_backward(nn::Trainer& t, const nn::StepInfo& s) override {
    if (s.global_step != 0) return;
    for (nn::Parameter* p : t.model().parameters()) grads.push_back(p->grads());
  }
};

std::vector<std::vector<double>> first_gradients(std::int64_t replicas, std::int64_t batch,
                                                 const nn::Dataset& d) {
  nn::MLP m({2, 16, 8, 2}, {.seed = 7});
  nn::SGD sgd(m.parameters(), {.lr = 0.1});
  nn::Trainer t(m, sgd, {.epochs = 1, .batch_size = batch, .seed = 3, .replicas = replicas});
  FirstGradients cb;
  t.add_callback(cb);
  t.fit(d);
  return cb.grads;
}

// Largest difference relative to the largest magnitude, over all gradients.
double rel_diff(const std::vector<std::vector<double>>& a,
                const std::vector<std::vector<double>>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    for (std::size_t k = 0; k < a[i].size(); ++k) {
      diff = std::max(diff, std::abs(a[i][k] - b[i][k]));
      scale = std::max(scale, std::abs(a[i][k]));
    }
  }
  return diff / scale;
}

}  // namespace

TEST_CASE("replicas sum to the whole batch's mean gradient", "[nn][trainer][replicas]") {
  const nn::Dataset d = nn::make_moons(200, 2);
  // 37 rows: shares of 18/19, 12/12/13, and with 40 replicas shares of none.
  const auto one = first_gradients(1, 37, d);
  for (const std::int64_t k : {2, 3, 5, 40}) {
    INFO("replicas " << k);
    const auto many = first_gradients(k, 37, d);
    // float32 sums taken in another order: not bit for bit.
    CHECK(rel_diff(one, many) < 1e-5);
    // and not trivially: every parameter received a gradient.
    for (const auto& g : many)
      CHECK(std::any_of(g.begin(), g.end(), [](double v) { return v != 0.0; }));
  }
}

TEST_CASE("training with replicas follows training without", "[nn][trainer][replicas]") {
  const nn::Dataset train = nn::make_moons(300, 4), test = nn::make_moons(100, 5);
  std::vector<double> losses[2];
  for (const std::int64_t k : {1, 2}) {
    nn::MLP m({2, 16, 2}, {.seed = 3});
    nn::Adam adam(m.parameters(), {.lr = 0.01});
    nn::Trainer t(m, adam, {.epochs = 3, .batch_size = 32, .seed = 1, .replicas = k});
    for (const nn::EpochMetrics& e : t.fit(train, &test)) losses[k - 1].push_back(e.train_loss);
    CHECK(t.history().back().test_accuracy > 0.8);
  }
  REQUIRE(losses[1].size() == 3);
  for (std::size_t e = 0; e < 3; ++e) CHECK(losses[1][e] == Approx(losses[0][e]).epsilon(1e-4));
}

TEST_CASE("a replica's gradient buffer and the pending-zero flags", "[nn][replicas]") {
  nn::Parameter p("w", tg::Shape{3}, tg::DType::f32);
  p.set_values(std::vector<double>{1, 2, 3});
  p.set_replicas(2);
  p.zero_grad();
  {  // replica 1 alone writes: the sum is its gradient (the own buffer held zeros)
    tg::Tape tape;
    const nn::ReplicaScope r(1);
    CHECK(nn::current_replica() == 1);
    tg::sum(p.var(tape) * p.var(tape)).backward();  // d/dw = 2w
  }
  CHECK(nn::current_replica() == 0);
  CHECK(p.grads() == std::vector<double>{0, 0, 0});  // the replica's is apart
  REQUIRE(p.reduce_begin());
  p.reduce_range(0, 3);
  p.reduce_end();
  CHECK(p.grads() == std::vector<double>{2, 4, 6});
  {  // now both write: the sum adds
    tg::Tape tape;
    tg::sum(p.var(tape)).backward();
    const nn::ReplicaScope r(1);
    tg::sum(p.var(tape) * 3.0).backward();
  }
  REQUIRE(p.reduce_begin());
  p.reduce_range(0, 2), p.reduce_range(2, 3);  // in pieces, as threads do
  p.reduce_end();
  CHECK(p.grads() == std::vector<double>{6, 8, 10});
  // No replica wrote: nothing to sum, and the gradient stays.
  CHECK_FALSE(p.reduce_begin());
  p.zero_grad();
  CHECK(p.grads() == std::vector<double>{0, 0, 0});
}

TEST_CASE("replica errors say what is wrong", "[nn][replicas][errors]") {
  nn::Parameter p("layer.w", tg::Shape{2}, tg::DType::f32);
  CHECK_THROWS_WITH(p.set_replicas(0), Catch::Contains("layer.w: 0 replicas"));
  {
    tg::Tape tape;
    const nn::ReplicaScope r(2);
    CHECK_THROWS_WITH(p.var(tape), Catch::Contains("layer.w: recording replica 2 but it has 1"));
  }
  const nn::Dataset d = nn::make_moons(50, 1);
  nn::MLP m({2, 4, 2}, {.seed = 1});
  nn::SGD sgd(m.parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(nn::Trainer(m, sgd, {.replicas = 0}),
                    Catch::Contains("replicas must lie in [1, 64], got 0"));
  CHECK_THROWS_WITH(nn::Trainer(m, sgd, {.replicas = 65}), Catch::Contains("got 65"));
  {  // a loss that fails on one replica's thread: fit() rethrows its error
    nn::Trainer t(m, sgd, {.epochs = 1, .batch_size = 10, .replicas = 2});
    t.set_loss([](const tg::Tensor& out, std::span<const std::int32_t> y) {
      if (nn::current_replica() == 1) throw std::runtime_error("replica 1's loss failed");
      return nn::cross_entropy(out, y);
    });
    CHECK_THROWS_WITH(t.fit(d), Catch::Contains("replica 1's loss failed"));
    // and the trainer is usable again with a good loss
    t.set_loss([](const tg::Tensor& out, std::span<const std::int32_t> y) {
      return nn::cross_entropy(out, y);
    });
    CHECK(std::isfinite(t.fit(d).back().train_loss));
  }
  {  // replicas split one process's batch; in a group they are refused
    struct Pair : nn::ProcessGroup {
      int rank() const override { return 0; }
      int size() const override { return 2; }
      void sum(std::span<double>) override {}
    } group;
    nn::Trainer t(m, sgd, {.epochs = 1, .replicas = 2});
    t.set_group(&group);
    CHECK_THROWS_WITH(t.fit(d), Catch::Contains("2 replicas in a group of 2 processes"));
  }
}
