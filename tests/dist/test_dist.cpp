// Data-parallel training (tapegrad/dist.hpp), run by ctest under
// `mpirun -np 2`: every rank runs every test case, in the same order, so the
// collectives inside them meet. Each rank also computes the one-process
// answer itself, which the data-parallel run must reproduce.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

#include <cmath>
#include <filesystem>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

namespace {

std::vector<double> flat_params(nn::Module& m) {
  std::vector<double> out;
  for (nn::Parameter* p : m.parameters())
    for (double v : p->values()) out.push_back(v);
  return out;
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

struct Run {
  std::vector<double> params;
  std::vector<nn::EpochMetrics> history;
};

// Trains a fresh MLP on `data` with Adam; data-parallel over all ranks when
// `parallel`, else alone on this rank.
Run train(const nn::Dataset& data, std::int64_t batch, std::int64_t epochs, bool parallel,
          dist::DataParallelOptions dp_options = {}) {
  nn::MLP model({2, 8, 8, 2}, {.seed = 3});
  nn::Adam adam(model.parameters(), {.lr = 0.01});
  nn::Trainer trainer(model, adam, {.epochs = epochs, .batch_size = batch, .seed = 5});
  std::optional<dist::DataParallel> dp;
  if (parallel) dp.emplace(trainer, dp_options);
  Run r;
  r.history = trainer.fit(data, &data);
  r.params = flat_params(model);
  return r;
}

}  // namespace

TEST_CASE("this test runs on two ranks", "[dist]") {
  REQUIRE(dist::built_with_mpi());
  REQUIRE(dist::active());
  REQUIRE(dist::size() == 2);
  double v[2] = {1.0 + dist::rank(), 10.0};
  dist::sum(v);
  CHECK(v[0] == 3.0);
  CHECK(v[1] == 20.0);
  const auto [lo, hi] = dist::min_max(static_cast<std::uint64_t>(7 + dist::rank()));
  CHECK(lo == 7);
  CHECK(hi == 8);
}

TEST_CASE("two ranks with global batch B take the steps of one process with batch B", "[dist]") {
  // 203 samples: the last batch of 10 has 3 rows, split 2 + 1.
  const nn::Dataset data = nn::make_moons(203, 11);
  const Run alone = train(data, 10, 3, false);
  const Run both = train(data, 10, 3, true);
  CHECK(max_rel_diff(both.params, alone.params) < 1e-5);
  REQUIRE(both.history.size() == 3);
  for (std::size_t e = 0; e < 3; ++e) {
    CHECK(both.history[e].train_loss == Approx(alone.history[e].train_loss).epsilon(1e-5));
    CHECK(both.history[e].test_loss == Approx(alone.history[e].test_loss).epsilon(1e-5));
    CHECK(both.history[e].test_accuracy == Approx(alone.history[e].test_accuracy));
  }
  // The replicas hold the same bits.
  std::vector<double> mine = both.params, rank0 = both.params;
  dist::broadcast(rank0.data(), rank0.size() * sizeof(double), 0);
  CHECK(mine == rank0);
}

TEST_CASE("a batch of one row leaves rank 1 without rows at every step", "[dist]") {
  const nn::Dataset data = nn::make_moons(21, 4);
  const Run alone = train(data, 1, 2, false);
  const Run both = train(data, 1, 2, true);
  CHECK(max_rel_diff(both.params, alone.params) < 1e-5);
}

TEST_CASE("bucket size changes how gradients travel, not the result", "[dist]") {
  const nn::Dataset data = nn::make_moons(200, 2);
  const Run one_per_param = train(data, 16, 2, true, {.reducer = {.bucket_bytes = 1}});
  const Run one_bucket = train(data, 16, 2, true, {.reducer = {.bucket_bytes = 1 << 20}});
  CHECK(one_per_param.params == one_bucket.params);  // a + b either way: same bits
}

TEST_CASE("the reducer sums gradients, starting buckets during the sweep", "[dist]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  nn::MLP model({3, 5, 4, 2}, {.dtype = tg::DType::f64, .seed = 1});
  dist::GradientReducer reducer(model.parameters(), tape, {.bucket_bytes = 64});
  REQUIRE(reducer.buckets() > 2);
  // Each rank its own input: the summed gradient is the sum of both.
  const std::vector<double> x = {0.5 + dist::rank(), -1.0, 2.0 * dist::rank()};
  auto loss = [&] {
    tape.clear();
    const tg::Tensor y = model(tg::tensor(x, {1, 3}));
    return tg::sum(y * y);
  };
  // This rank's own gradient, with the reducer off.
  reducer.detach();
  model.zero_grad();
  loss().backward();
  reducer.attach();
  std::vector<double> mine;
  for (nn::Parameter* p : model.parameters())
    for (double g : p->grads()) mine.push_back(g);
  std::vector<double> expected = mine;
  dist::sum(expected);

  model.zero_grad();
  loss().backward();
  CHECK(reducer.buckets_started() == reducer.buckets());  // all sent before finish()
  reducer.finish();
  CHECK(reducer.buckets_started() == 0);
  std::vector<double> got;
  for (nn::Parameter* p : model.parameters())
    for (double g : p->grads()) got.push_back(g);
  CHECK(got == expected);
  CHECK(std::any_of(mine.begin(), mine.end(), [&](double g) { return g != 0; }));

  // A rank without a backward still joins, with zero gradients.
  model.zero_grad();
  if (dist::rank() == 0) loss().backward();
  reducer.finish();
  std::vector<double> after;
  for (nn::Parameter* p : model.parameters())
    for (double g : p->grads()) after.push_back(g);
  std::vector<double> rank0 = dist::rank() == 0 ? mine : std::vector<double>(mine.size(), 0.0);
  dist::broadcast(rank0.data(), rank0.size() * sizeof(double), 0);
  CHECK(after == rank0);
}

TEST_CASE("a parameter used twice is sent after its last use", "[dist]") {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  nn::Linear shared("shared", 2, 2, tg::DType::f64, 2);
  const auto loss = [&](const tg::Tensor& x) {
    const tg::Tensor y = shared(shared(x));
    return tg::sum(y * y);
  };
  dist::GradientReducer reducer(shared.parameters(), tape, {.bucket_bytes = 1});
  shared.zero_grad();
  const tg::Tensor x = tg::tensor({1.0 + dist::rank(), 2.0}, tg::Shape{1, 2});
  loss(x).backward();
  reducer.finish();
  std::vector<double> g = shared.parameters()[0]->grads();
  // Against one rank's full gradient, summed by hand.
  reducer.detach();
  shared.zero_grad();
  loss(x).backward();
  std::vector<double> want = shared.parameters()[0]->grads();
  dist::sum(want);
  CHECK(g == want);
}

TEST_CASE("broadcast_parameters copies rank 0's model and optimiser state", "[dist]") {
  nn::MLP model({4, 3, 2}, {.seed = 100 + static_cast<std::uint64_t>(dist::rank())});
  nn::SGD sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  sgd.set_steps(dist::rank() == 0 ? 42 : 0);
  for (const auto& s : sgd.state())
    static_cast<float*>(s.data)[0] = dist::rank() == 0 ? 1.5f : -7.0f;
  const auto [lo0, hi0] = dist::min_max(dist::parameter_hash(model));
  CHECK(lo0 != hi0);
  dist::broadcast_parameters(model, &sgd);
  const auto [lo, hi] = dist::min_max(dist::parameter_hash(model));
  CHECK(lo == hi);
  CHECK(sgd.steps() == 42);
  for (const auto& s : sgd.state()) CHECK(static_cast<float*>(s.data)[0] == 1.5f);
  // Nothing else in the replicas check complains.
  CHECK_NOTHROW(dist::check_replicas(model, 1));
}

TEST_CASE("ranks that built different models get an error, not a crash", "[dist]") {
  nn::MLP model({4, dist::rank() == 0 ? 3 : 5, 2}, {.seed = 1});
  CHECK_THROWS_WITH(dist::broadcast_parameters(model),
                    Catch::Contains("the ranks built different models"));
}

TEST_CASE("diverged replicas are caught by the periodic check on every rank", "[dist]") {
  const nn::Dataset data = nn::make_moons(200, 9);
  nn::MLP model({2, 8, 2}, {.seed = 3});
  nn::Adam adam(model.parameters(), {.lr = 0.01});
  nn::Trainer trainer(model, adam, {.epochs = 1, .batch_size = 20, .seed = 5});
  dist::DataParallel dp(trainer, {.check_every = 4});
  // On rank 1 only, one weight moves at step 6: the check after step 8 sees it.
  struct Nudge : nn::Callback {
    void on_step_end(nn::Trainer& t, const nn::StepInfo& s) override {
      if (dist::rank() == 1 && s.global_step == 5)
        t.model().parameters()[0]->value<float>()[0] += 1e-3f;
    }
  } nudge;
  trainer.add_callback(nudge);
  CHECK_THROWS_WITH(trainer.fit(data), Catch::Contains("parameters differ after step 8"));
}

TEST_CASE("rank 0 resumes; fit() hands the epoch and the state to every rank", "[dist]") {
  const nn::Dataset data = nn::make_moons(120, 6);
  const std::string ckpt =
      (std::filesystem::temp_directory_path() / "tapegrad-dist-test.tgc").string();
  std::vector<double> straight;
  {
    nn::MLP model({2, 8, 2}, {.seed = 3});
    nn::Adam adam(model.parameters(), {.lr = 0.01});
    nn::Trainer trainer(model, adam, {.epochs = 3, .batch_size = 16, .seed = 5});
    dist::DataParallel dp(trainer);
    trainer.fit(data);
    straight = flat_params(model);
  }
  {
    nn::MLP model({2, 8, 2}, {.seed = 3});
    nn::Adam adam(model.parameters(), {.lr = 0.01});
    nn::Trainer trainer(model, adam,
                        {.epochs = 2, .batch_size = 16, .seed = 5, .checkpoint = ckpt});
    dist::DataParallel dp(trainer);
    trainer.fit(data);
  }
  dist::barrier();                         // rank 0 has written it
  nn::MLP model({2, 8, 2}, {.seed = 99});  // other weights: the resume must replace them
  nn::Adam adam(model.parameters(), {.lr = 0.01});
  nn::Trainer trainer(model, adam, {.epochs = 3, .batch_size = 16, .seed = 5});
  dist::DataParallel dp(trainer);
  if (dist::rank() == 0) CHECK(trainer.resume(ckpt) == 2);
  CHECK(trainer.fit(data).size() == 1);  // epoch 3 only, on both ranks
  CHECK(trainer.epochs_done() == 3);
  CHECK(max_rel_diff(flat_params(model), straight) < 1e-6);
  dist::barrier();
  if (dist::rank() == 0) std::filesystem::remove(ckpt);
}

int main(int argc, char** argv) {
  dist::Session mpi(argc, argv);
  return Catch::Session().run(argc, argv);
}
