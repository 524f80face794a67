// nn::Trainer: the same numbers as the loop written by hand, callbacks in
// their places, resume that continues exactly, and clear errors.
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <numbers>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {

std::vector<std::vector<double>> params_of(nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (nn::Parameter* p : m.parameters()) out.push_back(p->values());
  return out;
}

// The classic loop, written out: the Trainer must do exactly this.
std::vector<double> train_by_hand(nn::MLP& model, nn::Optimizer& opt, const nn::Dataset& d,
                                  std::int64_t batch, std::int64_t epochs, bool cosine) {
  const double peak = opt.lr();
  tg::Tape tape;
  tg::TapeScope scope(tape);
  nn::Batches batches(d, batch, 1);
  const std::int64_t per_epoch = batches.batches_per_epoch(), total = per_epoch * epochs;
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::vector<double> epoch_losses;
  for (std::int64_t e = 1; e <= epochs; ++e) {
    batches.start_epoch(e);
    double sum = 0;
    std::int64_t seen = 0, step = 0;
    while (batches.next(x, y)) {
      const double s = static_cast<double>((e - 1) * per_epoch + step);
      opt.set_lr(cosine ? peak * 0.5 *
                              (1 + std::cos(std::numbers::pi * s / static_cast<double>(total)))
                        : peak);
      tape.clear();
      const auto rows = static_cast<std::int64_t>(y.size());
      tg::Tensor loss = nn::cross_entropy(
          model(tg::external({rows, d.features}, tg::DType::f32, x.data(), nullptr)), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      sum += loss.value(0) * static_cast<double>(rows);
      seen += rows;
      ++step;
    }
    epoch_losses.push_back(sum / static_cast<double>(seen));
  }
  return epoch_losses;
}

// Counts the hook calls and checks what each one sees.
struct Recorder : nn::Callback {
  int fit_begin = 0, fit_end = 0, epoch_begin = 0, epoch_end = 0, step_begin = 0, step_end = 0,
      after_backward = 0;
  std::int64_t last_global = -1;
  bool gradients_seen = false, order_ok = true;
  void on_fit_begin(nn::Trainer&) override { ++fit_begin; }
  void on_epoch_begin(nn::Trainer&, std::int64_t) override { ++epoch_begin; }
  void on_step_begin(nn::Trainer&, const nn::StepInfo& s) override {
    order_ok = order_ok && s.global_step == last_global + 1 && step_begin == step_end;
    last_global = s.global_step;
    ++step_begin;
  }
  void on_after_backward(nn::Trainer& t, const nn::StepInfo&) override {
    ++after_backward;
    for (nn::Parameter* p : t.model().parameters())
      for (double g : p->grads()) gradients_seen = gradients_seen || g != 0.0;
  }
  void on_step_end(nn::Trainer&, const nn::StepInfo& s) override {
    ++step_end;
    order_ok = order_ok && std::isfinite(s.loss) && after_backward == step_end;
  }
  void on_epoch_end(nn::Trainer& t, const nn::EpochMetrics& m) override {
    ++epoch_end;
    order_ok = order_ok && t.history().back().epoch == m.epoch;
  }
  void on_fit_end(nn::Trainer&) override { ++fit_end; }
};

}  // namespace

TEST_CASE("the Trainer computes exactly the hand-written loop", "[nn][trainer]") {
  const nn::Dataset train = nn::make_moons(300, 4), test = nn::make_moons(100, 5);
  // One product thread leaves a core to gather batches ahead (BatchesAhead);
  // all cores gather inside Batches::next: the same numbers either way.
  const int threads = GENERATE(1, 0);
  tg::set_num_threads(threads);
  for (const bool cosine : {false, true}) {
    nn::MLP a({2, 16, 2}, {.seed = 3}), b({2, 16, 2}, {.seed = 3});
    nn::Adam oa(a.parameters(), {.lr = 0.01}), ob(b.parameters(), {.lr = 0.01});
    const std::vector<double> losses = train_by_hand(a, oa, train, 32, 3, cosine);
    nn::Trainer t(b, ob,
                  {.epochs = 3,
                   .batch_size = 32,
                   .seed = 1,
                   .schedule = cosine ? nn::Schedule::cosine : nn::Schedule::constant});
    const auto& hist = t.fit(train, &test);
    REQUIRE(hist.size() == 3);
    for (std::size_t e = 0; e < 3; ++e) CHECK(hist[e].train_loss == losses[e]);  // bit for bit
    CHECK(params_of(a) == params_of(b));
    CHECK(ob.lr() == oa.lr());
    // Evaluation matches its definition: accuracy in [0, 1], the loss finite.
    CHECK(hist.back().test_accuracy > 0.8);
    CHECK(std::isfinite(hist.back().test_loss));
  }
  tg::set_num_threads(0);
}

TEST_CASE("Trainer callbacks run in their places", "[nn][trainer]") {
  const nn::Dataset train = nn::make_moons(100, 1);
  nn::MLP m({2, 8, 2}, {.seed = 1});
  nn::SGD sgd(m.parameters(), {.lr = 0.1});
  nn::Trainer t(m, sgd, {.epochs = 2, .batch_size = 30});
  Recorder r;
  t.add_callback(r);
  const auto& hist = t.fit(train);  // no test set: test metrics are NaN
  CHECK(r.fit_begin == 1);
  CHECK(r.fit_end == 1);
  CHECK(r.epoch_begin == 2);
  CHECK(r.epoch_end == 2);
  CHECK(r.step_begin == 8);  // 4 batches (30, 30, 30, 10) per epoch
  CHECK(r.step_end == 8);
  CHECK(r.after_backward == 8);
  CHECK(r.gradients_seen);
  CHECK(r.order_ok);
  CHECK(std::isnan(hist.back().test_accuracy));
  // A model whose output is not one row of scores per sample has no accuracy.
  struct Flat : nn::Module {
    Flat() : Module("") {}
    tg::Tensor forward(const tg::Tensor& x) override { return tg::reshape(x, {x.numel()}); }
  } flat;
  nn::Trainer tf(flat, sgd, {.epochs = 1});
  tf.set_loss([](const tg::Tensor& out, std::span<const std::int32_t>) { return tg::mean(out); });
  const nn::EvalMetrics ev = tf.evaluate(train);
  CHECK(std::isnan(ev.accuracy));
  CHECK(std::isfinite(ev.loss));
}

TEST_CASE("Trainer resume from epoch 2 equals an uninterrupted run", "[nn][trainer]") {
  const nn::Dataset train = nn::make_moons(200, 6);
  const auto dir = std::filesystem::temp_directory_path() / "tapegrad_trainer_resume2";
  std::filesystem::create_directories(dir);
  const std::string ckpt = (dir / "c.tgc").string();
  const nn::TrainerOptions opts{.epochs = 4, .batch_size = 16, .schedule = nn::Schedule::cosine};
  nn::MLP whole({2, 8, 2}, {.seed = 9});
  nn::Adam ow(whole.parameters(), {.lr = 0.01});
  nn::Trainer(whole, ow, opts).fit(train);

  // Interrupted after epoch 2: an exception from a callback ends fit().
  struct StopAfter : nn::Callback {
    void on_epoch_end(nn::Trainer&, const nn::EpochMetrics& m) override {
      if (m.epoch == 2) throw tg::Error("stop");
    }
  } stop;
  nn::TrainerOptions with_ckpt = opts;
  with_ckpt.checkpoint = ckpt;
  {
    nn::MLP first({2, 8, 2}, {.seed = 9});
    nn::Adam of(first.parameters(), {.lr = 0.01});
    nn::Trainer t(first, of, with_ckpt);
    t.add_callback(stop);
    CHECK_THROWS_WITH(t.fit(train), "stop");
  }
  nn::MLP second({2, 8, 2}, {.seed = 77});
  nn::Adam os(second.parameters(), {.lr = 0.01});
  nn::Trainer t(second, os, with_ckpt);
  REQUIRE(t.resume() == 2);
  CHECK(t.epochs_done() == 2);
  const auto& hist = t.fit(train);
  REQUIRE(hist.size() == 2);  // epochs 3 and 4 (no earlier rows were handed back)
  CHECK(hist.front().epoch == 3);
  CHECK(params_of(second) == params_of(whole));  // bit for bit
  std::filesystem::remove_all(dir);
}

TEST_CASE("Trainer errors say what is wrong", "[nn][trainer][errors]") {
  const nn::Dataset train = nn::make_moons(50, 1);
  nn::MLP m({2, 4, 2}, {.seed = 1});
  nn::SGD sgd(m.parameters(), {.lr = 0.1});
  CHECK_THROWS_WITH(nn::Trainer(m, sgd, {.epochs = 0}), Catch::Contains("epochs must be positive"));
  CHECK_THROWS_WITH(nn::Trainer(m, sgd, {.batch_size = -3}),
                    Catch::Contains("batch size must be positive, got -3"));
  CHECK_THROWS_WITH(nn::parse_schedule("linear"), Catch::Contains("unknown schedule 'linear'"));
  {
    nn::Trainer t(m, sgd, {.epochs = 1});
    t.set_loss([](const tg::Tensor& out, std::span<const std::int32_t>) { return out; });
    CHECK_THROWS_WITH(t.fit(train), Catch::Contains("the loss function returned shape"));
  }
  {
    nn::Dataset empty{.features = 2, .classes = 2, .name = "nothing"};
    nn::Trainer t(m, sgd, {.epochs = 1});
    CHECK_THROWS_WITH(t.fit(empty), Catch::Contains("training set 'nothing' has no samples"));
    nn::Dataset torn = train;
    torn.y.pop_back();
    CHECK_THROWS_WITH(t.fit(torn), Catch::Contains("values and 49 labels for 50 samples"));
  }
  {
    nn::SGD wild(m.parameters(), {.lr = 1e30});
    nn::Trainer t(m, wild, {.epochs = 3, .batch_size = 10});
    CHECK_THROWS_WITH(t.fit(train), Catch::Contains("training diverged"));
  }
  {
    nn::Trainer t(m, sgd, {.epochs = 1});
    CHECK_THROWS_WITH(t.resume(), Catch::Contains("no checkpoint file given"));
    CHECK_THROWS_WITH(t.resume("/nonexistent/c.tgc"), Catch::Contains("/nonexistent/c.tgc"));
  }
}
