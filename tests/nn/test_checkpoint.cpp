// Checkpoints: round trip, every kind of bad file refused without touching
// the model, and atomic saves that survive being killed midway.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <tapegrad/nn.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "helpers.hpp"

namespace nn = tapegrad::nn;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {
fs::path temp_dir() {
  static int n = 0;
  fs::path p = fs::temp_directory_path() / fmt::format("tapegrad-ckpt-{}-{}", ::getpid(), n++);
  fs::create_directories(p);
  return p;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
}  // namespace

TEST_CASE("a checkpoint restores parameters, optimizer state and metadata", "[checkpoint]") {
  const fs::path dir = temp_dir();
  nn::MLP a({4, 8, 3}, {.seed = 1}), b({4, 8, 3}, {.seed = 2});
  nn::Adam oa(a.parameters(), {}), ob(b.parameters(), {});
  for (auto* p : a.parameters()) p->grad<float>()[0] = 0.5f;
  oa.step();
  nn::save_checkpoint((dir / "c.tgc").string(), a, &oa, {{"epoch", "3"}});
  const auto meta = nn::load_checkpoint((dir / "c.tgc").string(), b, &ob);
  CHECK(meta.at("epoch") == "3");
  CHECK(ob.steps() == 1);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    CHECK(a.parameters()[i]->values() == b.parameters()[i]->values());
  const auto sa = oa.state(), sb = ob.state();
  REQUIRE(sa.size() == sb.size());
  CHECK(std::memcmp(sa[0].data, sb[0].data, sa[0].param->bytes()) == 0);
  CHECK_FALSE(fs::exists(dir / fmt::format("c.tgc.tmp-{}", ::getpid())));
  fs::remove_all(dir);
}

TEST_CASE("bad checkpoints are refused with a clear error and change nothing",
          "[checkpoint][errors]") {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "c.tgc").string();
  nn::MLP src({4, 8, 3}, {.seed = 1});
  nn::save_checkpoint(path, src, nullptr, {{"epoch", "1"}});
  const std::string good = slurp(path);
  nn::MLP model({4, 8, 3}, {.seed = 7});
  const auto before = model.parameters()[0]->values();
  const auto unchanged = [&] { CHECK(model.parameters()[0]->values() == before); };

  SECTION("truncated") {
    for (std::size_t cut : {std::size_t{10}, std::size_t{40}, good.size() / 2, good.size() - 1}) {
      spit(path, good.substr(0, cut));
      REQUIRE_THROWS_AS(nn::load_checkpoint(path, model, nullptr), tg::Error);
      unchanged();
    }
    spit(path, good.substr(0, good.size() / 2));
    REQUIRE_THROWS_WITH(nn::load_checkpoint(path, model, nullptr), Contains("c.tgc: "));
  }
  SECTION("corrupted data byte") {
    std::string bad = good;
    bad[bad.size() - 20] ^= 0x01;
    spit(path, bad);
    REQUIRE_THROWS_WITH(nn::load_checkpoint(path, model, nullptr),
                        Contains("corrupted: checksum mismatch"));
    unchanged();
  }
  SECTION("wrong version") {
    std::string bad = good;
    bad[8] = 9;
    spit(path, bad);
    REQUIRE_THROWS_WITH(nn::load_checkpoint(path, model, nullptr),
                        Contains("format version 9 is not supported"));
    unchanged();
  }
  SECTION("not a checkpoint") {
    spit(path, "hello, this is not a checkpoint at all");
    REQUIRE_THROWS_WITH(nn::load_checkpoint(path, model, nullptr),
                        Contains("not a tapegrad checkpoint"));
  }
  SECTION("shape mismatch") {
    nn::MLP other({4, 9, 3}, {.seed = 1});
    REQUIRE_THROWS_WITH(
        nn::load_checkpoint(path, other, nullptr),
        Contains("entry 'layer0.weight' is float32 (8x4), the model expects float32 (9x4)"));
  }
  SECTION("optimizer state missing or of another kind") {
    nn::Adam adam(model.parameters(), {});
    REQUIRE_THROWS_WITH(nn::load_checkpoint(path, model, &adam),
                        Contains("has no entry 'optimizer."));
    unchanged();
  }
  SECTION("missing file") {
    REQUIRE_THROWS_WITH(nn::load_checkpoint((dir / "none.tgc").string(), model, nullptr),
                        Contains("none.tgc: cannot open checkpoint"));
  }
  fs::remove_all(dir);
}

TEST_CASE("a save killed midway leaves the old or the new checkpoint, never a broken one",
          "[checkpoint][atomic]") {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "c.tgc").string();
  nn::MLP model({512, 1024, 10}, {.seed = 1});  // about 2 MB per save
  nn::save_checkpoint(path, model, nullptr, {{"gen", "0"}});
  for (int trial = 0; trial < 6; ++trial) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int i = 1;; ++i) nn::save_checkpoint(path, model, nullptr, {{"gen", std::to_string(i)}});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(15 + 23 * trial));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    nn::MLP check({512, 1024, 10}, {.seed = 2});
    const auto meta = nn::load_checkpoint(path, check, nullptr);  // must not throw
    CHECK(check.parameters()[0]->values() == model.parameters()[0]->values());
    INFO("generation " << meta.at("gen"));
  }
  fs::remove_all(dir);
}
