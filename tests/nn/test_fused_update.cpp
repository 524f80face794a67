// Optimiser updates fused into the backward sweep (nn::FusedUpdate) against
// backward() followed by step(): the same parameters, bit for bit.
#include <tapegrad/nn.hpp>
#include <tapegrad/report.hpp>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {
struct Run {
  Run(tg::DType dtype, std::uint64_t seed) : model({5, 7, 6, 3}, {.dtype = dtype, .seed = seed}) {}
  nn::MLP model;
};

std::vector<std::vector<double>> values(nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (nn::Parameter* p : m.parameters()) out.push_back(p->values());
  return out;
}

tg::Tensor loss_of(nn::MLP& m, int step, tg::DType dtype) {
  const std::int64_t rows = 4;
  const std::vector<double> xv = sample(rows * 5, 40 + static_cast<unsigned>(step), -1, 1);
  static const std::vector<std::int32_t> labels{0, 2, 1, 2};
  return nn::cross_entropy(m(tg::tensor(xv, {rows, 5}, {.dtype = dtype})), labels);
}

// Trains `steps` steps of `make(params)` with step() and with a fused update,
// from the same start, and returns both runs' parameters.
template <class Make>
std::pair<std::vector<std::vector<double>>, std::vector<std::vector<double>>> both(tg::DType dtype,
                                                                                   Make make,
                                                                                   int steps) {
  Run plain(dtype, 9), fused(dtype, 9);
  auto opt_a = make(plain.model.parameters());
  auto opt_b = make(fused.model.parameters());
  tg::Tape ta, tb;
  nn::FusedUpdate hook(*opt_b, tb);
  for (int s = 0; s < steps; ++s) {
    {
      ta.clear();
      tg::TapeScope scope(ta);
      tg::Tensor l = loss_of(plain.model, s, dtype);
      opt_a->zero_grad();
      l.backward();
      opt_a->step();
    }
    {
      tb.clear();
      tg::TapeScope scope(tb);
      tg::Tensor l = loss_of(fused.model, s, dtype);
      opt_b->zero_grad();
      hook.begin();
      l.backward();
      hook.finish();
    }
  }
  return {values(plain.model), values(fused.model)};
}
}  // namespace

TEST_CASE("a fused update gives exactly backward then step", "[nn][optim][fused]") {
  for (tg::DType dtype : {tg::DType::f64, tg::DType::f32}) {
    CAPTURE(std::string(tg::dtype_name(dtype)));
    const auto adam = [](std::vector<nn::Parameter*> p) {
      return std::make_unique<nn::Adam>(std::move(p),
                                        nn::AdamOptions{.lr = 0.05, .weight_decay = 0.01});
    };
    const auto sgd = [](std::vector<nn::Parameter*> p) {
      return std::make_unique<nn::SGD>(std::move(p), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
    };
    const auto nesterov = [](std::vector<nn::Parameter*> p) {
      return std::make_unique<nn::SGD>(
          std::move(p), nn::SGDOptions{.lr = 0.1, .momentum = 0.8, .nesterov = true});
    };
    const auto plain_sgd = [](std::vector<nn::Parameter*> p) {
      return std::make_unique<nn::SGD>(std::move(p), nn::SGDOptions{.lr = 0.2});
    };
    for (auto [a, b] : {both(dtype, adam, 5), both(dtype, sgd, 5), both(dtype, nesterov, 5),
                        both(dtype, plain_sgd, 5)}) {
      REQUIRE(a.size() == 6);
      CHECK(a == b);
      // and training moved them (a fused update that did nothing would fail here)
      Run start(dtype, 9);
      CHECK(values(start.model) != a);
    }
  }
}

TEST_CASE("a fused update runs inside the sweep, after a parameter's last use",
          "[nn][optim][fused]") {
  // y = W (W x): one parameter, two leaves. Its update must wait for the
  // second (lower) leaf, when both uses have added to its gradient; a bias
  // that the loss never reaches is updated by finish() only.
  const auto run = [](bool fused_update) {
    nn::Linear lin("l", 3, 3, tg::DType::f64, 4, nn::Init::xavier_uniform, false);
    nn::Linear unused("u", 2, 1, tg::DType::f64, 5, nn::Init::xavier_uniform, true);
    std::vector<nn::Parameter*> params{&lin.weight(), &unused.weight(), unused.bias()};
    nn::Adam adam(params, {.lr = 0.1, .weight_decay = 0.5});
    tg::Tape tape;
    nn::FusedUpdate hook(adam, tape);
    std::vector<std::vector<double>> mid;
    for (int s = 0; s < 3; ++s) {
      tape.clear();
      tg::TapeScope scope(tape);
      tg::Tensor x = tg::tensor(sample(6, 70 + static_cast<unsigned>(s), -1, 1), {2, 3});
      tg::Tensor loss = tg::sum(tg::tanh(lin(lin(x))));
      adam.zero_grad();
      if (fused_update) hook.begin();
      const auto before_w = lin.weight().values(), before_u = unused.weight().values();
      loss.backward();
      if (fused_update) {
        CHECK(lin.weight().values() != before_w);  // updated during the sweep
        CHECK(unused.weight().values() == before_u);
        hook.finish();
        CHECK(unused.weight().values() != before_u);  // weight decay moves it on a zero gradient
      } else {
        adam.step();
      }
      mid.push_back(lin.weight().values());
    }
    for (nn::Parameter* p : params) mid.push_back(p->values());
    return mid;
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("fused update misuse is refused with a clear error", "[nn][optim][fused][errors]") {
  nn::Linear lin("l", 2, 2, tg::DType::f64, 4, nn::Init::xavier_uniform, true);
  nn::SGD sgd(lin.parameters(), {.lr = 0.1});
  REQUIRE_THROWS_WITH(sgd.update(0), Catch::Contains("update() outside begin_step()"));
  REQUIRE_THROWS_WITH(sgd.end_step(), Catch::Contains("end_step() without begin_step()"));
  sgd.begin_step();
  REQUIRE_THROWS_WITH(sgd.begin_step(), Catch::Contains("begin_step() twice"));
  REQUIRE_THROWS_WITH(sgd.step(), Catch::Contains("step() inside begin_step()"));
  REQUIRE_THROWS_WITH(sgd.update(2), Catch::Contains("no parameter 2 (it has 2)"));
  sgd.update(1);
  REQUIRE_THROWS_WITH(sgd.update(1), Catch::Contains("'l.bias' updated twice in one step"));
  sgd.end_step();
  CHECK(sgd.steps() == 1);

  tg::Tape tape;
  {
    nn::FusedUpdate hook(sgd, tape);
    REQUIRE_THROWS_WITH(hook.finish(), Catch::Contains("finish() without begin()"));
    // A sweep outside begin()/finish() updates nothing.
    tg::TapeScope scope(tape);
    const auto w = lin.weight().values();
    sgd.zero_grad();
    tg::sum(lin(tg::tensor({{1.0, 2.0}}))).backward();
    CHECK(lin.weight().values() == w);
    CHECK(sgd.steps() == 1);
  }
  {
    // Two sweeps in one step: the second's gradient would miss the update.
    nn::FusedUpdate hook(sgd, tape);
    tape.clear();
    tg::TapeScope scope(tape);
    sgd.zero_grad();
    hook.begin();
    tg::sum(lin(tg::tensor({{1.0, 2.0}}))).backward();
    tg::Tensor again = tg::sum(lin(tg::tensor({{3.0, 1.0}})));
    REQUIRE_THROWS_WITH(again.backward(),
                        Catch::Contains("'l.weight' is reached again after its update"));
  }
  // (the hook's destructor ended the step cut short; a new one can begin)
  sgd.begin_step();
  sgd.end_step();
  std::vector<nn::Parameter*> twice{&lin.weight(), &lin.weight()};
  nn::SGD dup(twice, {.lr = 0.1});
  REQUIRE_THROWS_WITH(nn::FusedUpdate(dup, tape), Catch::Contains("'l.weight' is listed twice"));
}

namespace {
// Sees, in on_after_backward, whether the step's update has already run.
struct Watcher : nn::Callback {
  explicit Watcher(int allow_every) : every(allow_every) {}
  int every;  // allows fusing every `every`-th step (0: never)
  std::vector<std::vector<double>> before;
  std::vector<bool> updated_early;  // per step
  bool allows_fused_update(const nn::StepInfo& s) const override {
    return every > 0 && s.global_step % every == 0;
  }
  void on_step_begin(nn::Trainer& t, const nn::StepInfo&) override { before = snapshot(t); }
  void on_after_backward(nn::Trainer& t, const nn::StepInfo&) override {
    updated_early.push_back(snapshot(t) != before);
  }
  static std::vector<std::vector<double>> snapshot(nn::Trainer& t) {
    std::vector<std::vector<double>> v;
    for (nn::Parameter* p : t.model().parameters()) v.push_back(p->values());
    return v;
  }
};
// Zeroes every gradient after backward (a clip to nothing): with plain SGD
// no parameter may move, which only holds when the update waits for it.
struct ZeroGradients : nn::Callback {
  void on_after_backward(nn::Trainer& t, const nn::StepInfo&) override {
    for (nn::Parameter* p : t.model().parameters())
      for (float& g : p->grad<float>()) g = 0;
  }
};
}  // namespace

TEST_CASE("the trainer fuses the update only where no callback can tell", "[nn][trainer][fused]") {
  const nn::Dataset train = nn::make_moons(120, 6);
  const auto fit = [&](bool fused, nn::Callback& cb) {
    nn::MLP m({2, 8, 2}, {.seed = 5});
    nn::Adam adam(m.parameters(), {.lr = 0.02});
    nn::Trainer t(m, adam, {.epochs = 2, .batch_size = 40, .fused_update = fused});
    t.add_callback(cb);
    t.fit(train);
    return values(m);
  };
  Watcher every_step(1), odd(2), never(0), off(1);
  const auto a = fit(true, every_step), b = fit(true, odd), c = fit(true, never),
             d = fit(false, off);
  CHECK(a == d);  // fused or not, the same numbers
  CHECK(b == d);
  CHECK(c == d);
  REQUIRE(every_step.updated_early.size() == 6);
  for (std::size_t s = 0; s < 6; ++s) {
    CHECK(every_step.updated_early[s]);
    CHECK(odd.updated_early[s] == (s % 2 == 0));
    CHECK_FALSE(never.updated_early[s]);
    CHECK_FALSE(off.updated_early[s]);  // fused_update = false
  }

  // A callback that changes gradients (and says nothing) is obeyed.
  nn::MLP m({2, 8, 2}, {.seed = 5});
  const auto start = values(m);
  nn::SGD sgd(m.parameters(), {.lr = 0.5});
  nn::Trainer t(m, sgd, {.epochs = 1, .batch_size = 40, .fused_update = true});
  ZeroGradients zero;
  t.add_callback(zero);
  t.fit(train);
  CHECK(values(m) == start);
}

TEST_CASE("the training monitor's measured steps are not fused", "[nn][trainer][fused]") {
  const nn::Dataset train = nn::make_moons(160, 7);
  const auto ratios = [&](bool fused) {
    nn::MLP m({2, 8, 2}, {.seed = 6});
    nn::Adam adam(m.parameters(), {.lr = 0.02});
    nn::Trainer t(m, adam, {.epochs = 2, .batch_size = 16, .fused_update = fused});
    tg::report::TrainingMonitor monitor({.samples_per_epoch = 3});
    Watcher watch(1);
    t.add_callback(monitor);
    t.add_callback(watch);
    t.fit(train);
    std::vector<std::vector<double>> out;
    for (const auto& s : monitor.steps()) out.push_back(s.update_ratio);
    std::size_t early = 0;
    for (bool u : watch.updated_early) early += u;
    return std::make_pair(out, early);
  };
  const auto [fused, early] = ratios(true);
  const auto [plain, none] = ratios(false);
  REQUIRE(fused.size() == 8);  // 3 measured steps of 10, and each epoch's last
  CHECK(fused == plain);
  for (const auto& r : fused)
    for (double x : r) CHECK(x > 0);
  CHECK(early == 20 - 8);  // every other step was fused
  CHECK(none == 0);
}

TEST_CASE("anomaly mode and a taken leaf hook turn fusing off", "[nn][trainer][fused]") {
  const nn::Dataset train = nn::make_moons(80, 8);
  nn::MLP m({2, 4, 2}, {.seed = 7});
  nn::Adam adam(m.parameters(), {.lr = 0.02});
  nn::Trainer t(m, adam, {.epochs = 1, .batch_size = 40, .fused_update = true});
  t.tape().set_anomaly_enabled(true);
  Watcher watch(1);
  t.add_callback(watch);
  t.fit(train);
  REQUIRE(watch.updated_early.size() == 2);
  CHECK_FALSE(watch.updated_early[0]);
  CHECK_FALSE(watch.updated_early[1]);

  tg::Tape tape;
  nn::FusedUpdate first(adam, tape);
  REQUIRE_THROWS_WITH(nn::FusedUpdate(adam, tape), Catch::Contains("leaf hook is taken"));
}
