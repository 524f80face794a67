// BatchesAhead: exactly the batches of Batches, in the same order, gathered
// on a thread of its own; the buffers handed back stay untouched until the
// call after next; it stops cleanly at any point.
#include <tapegrad/nn.hpp>
#include <tapegrad/threads.hpp>

#include <chrono>
#include <thread>

#include "helpers.hpp"

namespace nn = tapegrad::nn;

namespace {
nn::Dataset numbered(std::int64_t n) {
  nn::Dataset d{.n = n, .features = 3, .classes = 5};
  for (std::int64_t i = 0; i < n; ++i) {
    for (int f = 0; f < 3; ++f) d.x.push_back(static_cast<float>(i * 10 + f));
    d.y.push_back(static_cast<std::int32_t>(i % 5));
  }
  return d;
}
}  // namespace

TEST_CASE("batches gathered ahead are the batches, in order, epoch after epoch",
          "[data][threads]") {
  const nn::Dataset d = numbered(103);
  for (const int shards : {1, 3}) {
    for (int rank = 0; rank < shards; ++rank) {
      nn::Batches plain(d, 16, 7), wrapped(d, 16, 7);
      plain.set_shard(rank, shards);
      wrapped.set_shard(rank, shards);
      nn::BatchesAhead ahead(wrapped);
      CHECK(ahead.batches_per_epoch() == 7);
      std::vector<float> x, xa;
      std::vector<std::int32_t> y, ya;
      for (std::int64_t e = 1; e <= 3; ++e) {
        plain.start_epoch(e);
        ahead.start_epoch(e);
        int steps = 0;
        std::vector<float> handed_back;  // the batch before this one
        const float* handed_back_at = nullptr;
        while (plain.next(x, y)) {
          REQUIRE(ahead.next(xa, ya));
          ++steps;
          CHECK(xa == x);
          CHECK(ya == y);
          CHECK(ahead.global_rows() == plain.global_rows());
          // The buffer handed back a call ago still holds its batch, also
          // after the worker has had time to gather the next one.
          if (e == 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
          if (handed_back_at) {
            const std::vector<float> now(handed_back_at, handed_back_at + handed_back.size());
            CHECK(now == handed_back);
          }
          handed_back = xa;
          handed_back_at = xa.data();
        }
        CHECK(steps == 7);
        CHECK_FALSE(ahead.next(xa, ya));
        CHECK_FALSE(ahead.next(xa, ya));  // and stays at the end
      }
    }
  }
}

TEST_CASE("batches gathered ahead: restart mid-epoch, stop mid-epoch, no epoch",
          "[data][threads]") {
  const nn::Dataset d = numbered(50);
  std::vector<float> x, xa;
  std::vector<std::int32_t> y, ya;
  {
    nn::Batches b(d, 8, 3);
    nn::BatchesAhead ahead(b);
    CHECK_FALSE(ahead.next(xa, ya));  // no epoch started yet
    ahead.start_epoch(1);
    REQUIRE(ahead.next(xa, ya));
    REQUIRE(ahead.next(xa, ya));
    ahead.start_epoch(2);  // a restart while the third batch is being gathered
    nn::Batches plain(d, 8, 3);
    plain.start_epoch(2);
    int steps = 0;
    while (plain.next(x, y)) {
      REQUIRE(ahead.next(xa, ya));
      CHECK(ya == y);
      CHECK(xa == x);
      ++steps;
    }
    CHECK(steps == 7);
    CHECK_FALSE(ahead.next(xa, ya));
  }
  for (int calls = 0; calls < 4; ++calls) {  // destroyed with a gather under way
    nn::Batches b(d, 8, 3);
    nn::BatchesAhead ahead(b);
    ahead.start_epoch(1);
    for (int k = 0; k < calls; ++k) REQUIRE(ahead.next(xa, ya));
  }
}
