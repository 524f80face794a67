// Data readers: correct values from well-formed files, and a clear error
// naming the file (and line and column) for each kind of bad file.
#include <fmt/format.h>
#include <zlib.h>
#include <tapegrad/nn.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "helpers.hpp"

namespace nn = tapegrad::nn;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("tapegrad-test-{}-{}", ::getpid(), counter()++);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string idx_images(std::uint32_t n, std::uint32_t r, std::uint32_t c, std::size_t pixels) {
  std::string s = be32(0x803) + be32(n) + be32(r) + be32(c);
  for (std::size_t i = 0; i < pixels; ++i) s += static_cast<char>(i * 51 % 256);
  return s;
}
std::string idx_labels(std::uint32_t n) {
  std::string s = be32(0x801) + be32(n);
  for (std::uint32_t i = 0; i < n; ++i) s += static_cast<char>(i % 3);
  return s;
}
void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
}  // namespace

TEST_CASE("IDX files, plain and gzip, read with pixels scaled to [0, 1]", "[data][idx]") {
  TempDir d;
  write(d.file("img"), idx_images(4, 2, 3, 24));
  write_gz(d.file("lab.gz"), idx_labels(4));
  const nn::Dataset ds = nn::read_idx(d.file("img"), d.file("lab.gz"));
  CHECK(ds.n == 4);
  CHECK(ds.features == 6);
  CHECK(ds.classes == 3);
  CHECK(ds.x[1] == Approx(51 / 255.0));
  CHECK(ds.y == std::vector<std::int32_t>{0, 1, 2, 0});
}

TEST_CASE("bad IDX files give errors naming the file and the problem", "[data][idx][errors]") {
  TempDir d;
  write(d.file("lab"), idx_labels(4));
  write(d.file("img"), idx_images(4, 2, 3, 24));
  SECTION("missing file") {
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("nope"), d.file("lab")),
                        Contains("nope: cannot open: no such file"));
  }
  SECTION("wrong magic number") {
    write(d.file("bad"), std::string("\x12\x34\x08\x03", 4) + std::string(100, '\0'));
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("bad"), d.file("lab")),
                        Contains("bad: not an IDX file: wrong magic number 0x12340803"));
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("lab"), d.file("lab")),
                        Contains("expected 3 dimensions"));
  }
  SECTION("truncated data") {
    write_gz(d.file("short.gz"), idx_images(4, 2, 3, 20));
    REQUIRE_THROWS_WITH(
        nn::read_idx(d.file("short.gz"), d.file("lab")),
        Contains("short.gz: truncated: the header promises 24 data bytes, the file holds 20"));
  }
  SECTION("a header claiming millions or billions of images fails without allocating them") {
    write(d.file("huge"), idx_images(10000000u, 28, 28, 10));
    write(d.file("hugelab"), be32(0x801) + be32(10000000u) + "abc");
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("huge"), d.file("hugelab")), Contains("truncated"));
    write(d.file("huger"), idx_images(2000000000u, 28, 28, 10));
    write(d.file("hugerlab"), be32(0x801) + be32(2000000000u) + "abc");
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("huger"), d.file("hugerlab")),
                        Contains("more than this reader accepts"));
  }
  SECTION("dimensions whose product overflows (found by fuzzing)") {
    write(d.file("wide"), idx_images(3, 0xFFFFFFFFu, 0xFFFFFFFFu, 0));
    write(d.file("lab3"), idx_labels(3));
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("wide"), d.file("lab3")),
                        Contains("the header claims 3 images of 4294967295x4294967295 pixels"));
  }
  SECTION("image and label counts disagree") {
    write(d.file("lab5"), idx_labels(5));
    REQUIRE_THROWS_WITH(
        nn::read_idx(d.file("img"), d.file("lab5")),
        Contains("holds 4 images but") && Contains("holds 5 labels: the counts disagree"));
  }
  SECTION("corrupt gzip stream") {
    std::string gz;
    write_gz(d.file("ok.gz"), idx_images(4, 2, 3, 24));
    std::ifstream in(d.file("ok.gz"), std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
    for (std::size_t i = 12; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
    write(d.file("bad.gz"), gz);
    REQUIRE_THROWS_AS(nn::read_idx(d.file("bad.gz"), d.file("lab")), tg::Error);
  }
  SECTION("trailing bytes") {
    write(d.file("long"), idx_images(4, 2, 3, 30));
    REQUIRE_THROWS_WITH(nn::read_idx(d.file("long"), d.file("lab")), Contains("trailing data"));
  }
}

TEST_CASE("CSV files: label by name or index, errors with line and column", "[data][csv]") {
  TempDir d;
  write(d.file("ok.csv"), "a,b,label\n1.5,2,1\n-3,4e-1,0\n\n5,6,2\n");
  const nn::Dataset ds = nn::read_csv(d.file("ok.csv"), "label");
  CHECK(ds.n == 3);
  CHECK(ds.features == 2);
  CHECK(ds.classes == 3);
  CHECK(ds.x == std::vector<float>{1.5f, 2, -3, 0.4f, 5, 6});
  CHECK(nn::read_csv(d.file("ok.csv"), "2").y == std::vector<std::int32_t>{1, 0, 2});
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("ok.csv"), "0"),
                      Contains("ok.csv:2: label '1.5' in column 1 must be a whole number"));
  write(d.file("bad.csv"), "a,b,label\n1,2,0\n3,x7,1\n");
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("bad.csv"), "label"),
                      Contains("bad.csv:3: column 2 ('b'): 'x7' is not a number"));
  write(d.file("ragged.csv"), "a,b,label\n1,2\n");
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("ragged.csv"), "label"),
                      Contains("ragged.csv:2: 2 cells, the header has 3"));
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("ok.csv"), "class"), Contains("no column named 'class'"));
  write(d.file("neg.csv"), "a,label\n1,-1\n");
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("neg.csv"), "label"),
                      Contains("must be a whole number >= 0"));
  write(d.file("empty.csv"), "");
  REQUIRE_THROWS_WITH(nn::read_csv(d.file("empty.csv"), "label"), Contains("empty file"));
}

TEST_CASE("generated sets are deterministic; batches cover every sample once", "[data]") {
  const auto a = nn::make_spirals(90, 3, 5), b = nn::make_spirals(90, 3, 5),
             c = nn::make_spirals(90, 3, 6);
  CHECK(a.x == b.x);
  CHECK(a.x != c.x);
  CHECK(nn::make_xor(10, 1).classes == 2);
  nn::Batches batches(a, 32, 7);
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::multiset<float> seen;
  int count = 0;
  while (batches.next(x, y)) {
    ++count;
    for (std::size_t i = 0; i < y.size(); ++i) seen.insert(x[2 * i]);
  }
  CHECK(count == 3);
  std::multiset<float> first_features;
  for (std::int64_t i = 0; i < a.n; ++i)
    first_features.insert(a.x[static_cast<std::size_t>(2 * i)]);
  CHECK(seen == first_features);
  auto [train, test] = nn::split(a, 0.2, 1);
  CHECK(train.n == 72);
  CHECK(test.n == 18);
  const auto nz = nn::Normalizer::fit(train);
  nn::Normalizer{nz}.apply(train);
  double mean0 = 0;
  for (std::int64_t i = 0; i < train.n; ++i) mean0 += train.x[static_cast<std::size_t>(2 * i)];
  CHECK(mean0 / static_cast<double>(train.n) == Approx(0).margin(1e-5));
}

TEST_CASE("sharded batches: N shards together are the one-process batches", "[data][dist]") {
  const auto d = nn::make_moons(23, 3);
  for (int shards : {2, 3, 7}) {
    nn::Batches whole(d, 5, 9);
    std::vector<nn::Batches> parts;
    for (int r = 0; r < shards; ++r) {
      parts.emplace_back(d, 5, 9);
      parts.back().set_shard(r, shards);
    }
    std::vector<float> x, xr;
    std::vector<std::int32_t> y, yr;
    int steps = 0;
    while (whole.next(x, y)) {
      ++steps;
      std::int64_t rows = 0;
      for (int r = 0; r < shards; ++r) {
        REQUIRE(parts[static_cast<std::size_t>(r)].next(xr, yr));  // true even with no rows
        CHECK(parts[static_cast<std::size_t>(r)].global_rows() ==
              static_cast<std::int64_t>(y.size()));
        // Shard r holds rows r, r + shards, ... of the whole batch.
        for (std::size_t k = 0; k < yr.size(); ++k) {
          const std::size_t row =
              static_cast<std::size_t>(r) + k * static_cast<std::size_t>(shards);
          CHECK(yr[k] == y[row]);
          CHECK(xr[2 * k] == x[2 * row]);
        }
        rows += static_cast<std::int64_t>(yr.size());
      }
      CHECK(rows == static_cast<std::int64_t>(y.size()));
    }
    CHECK(steps == 5);  // 5 + 5 + 5 + 5 + 3
    for (auto& p : parts) CHECK_FALSE(p.next(xr, yr));
  }
  nn::Batches b(d, 5, 1);
  CHECK_THROWS_WITH(b.set_shard(2, 2), Catch::Contains("shard 2 of 2 does not exist"));
  CHECK_THROWS_WITH(b.set_shard(0, 0), Catch::Contains("shard 0 of 0 does not exist"));
}
