// One tape per thread: independent models train on several threads at once
// with the same results as one after another; a foreign thread is refused.
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <thread>

#include "helpers.hpp"

namespace nn = tapegrad::nn;
using Catch::Matchers::Contains;

namespace {
// Trains a small MLP on its own data; returns its parameters.
std::vector<double> train(std::uint64_t seed) {
  tg::set_num_threads(1);  // matrix kernels single-threaded inside each worker
  auto data = nn::make_spirals(300, 3, seed);
  nn::MLP m({2, 32, 32, 3}, {.seed = seed});
  nn::Adam adam(m.parameters(), {.lr = 0.01});
  train_epochs(m, adam, data, 32, seed, 5);  // on this thread's own tape
  std::vector<double> out;
  for (auto* p : m.parameters())
    for (double v : p->values()) out.push_back(v);
  return out;
}
}  // namespace

TEST_CASE("independent models train on four threads at once as they do one after another",
          "[threads]") {
  std::vector<std::vector<double>> sequential, parallel(4);
  for (std::uint64_t s = 1; s <= 4; ++s) sequential.push_back(train(s));
  std::vector<std::thread> workers;
  for (std::uint64_t s = 1; s <= 4; ++s)
    workers.emplace_back([&, s] { parallel[s - 1] = train(s); });
  for (auto& w : workers) w.join();
  for (int i = 0; i < 4; ++i)
    CHECK(parallel[static_cast<std::size_t>(i)] == sequential[static_cast<std::size_t>(i)]);
  tg::set_num_threads(0);
}

TEST_CASE("each thread has its own current tape", "[threads]") {
  tg::Tape* main_tape = &tg::current_tape();
  tg::Tape* other = nullptr;
  std::thread([&] { other = &tg::current_tape(); }).join();
  CHECK(other != main_tape);
}

TEST_CASE("using a tape from a thread that does not own it throws", "[threads]") {
  tg::Tape tape;
  std::string error;
  std::thread([&] {
    try {
      tg::TapeScope s(tape);
      tg::zeros({2});
    } catch (const tg::Error& e) {
      error = e.what();
    }
  }).join();
  CHECK_THAT(error, Contains("this tape belongs to another thread"));
  std::thread([&] {
    tape.adopt();  // a deliberate hand-over
    tg::TapeScope s(tape);
    CHECK(tg::sum(tg::ones({3})).value(0) == 3);
  }).join();
  tape.adopt();
  tape.clear();
}
