#include "tapegrad/nn/data.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "tapegrad/error.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::nn {
namespace {

// A gzip or plain file read through zlib (gzread passes plain files through).
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      throw Error(fmt::format("{}: cannot open: no such file", path));
    if (S_ISDIR(st.st_mode)) throw Error(fmt::format("{}: is a folder, not a file", path));
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw Error(fmt::format("{}: cannot open for reading", path));
    gzbuffer(f_, 1 << 17);
  }
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to n bytes; returns how many were read. Throws on a corrupt stream.
  std::size_t read(void* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(f_, static_cast<char*>(dst) + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        throw Error(
            fmt::format("{}: corrupt compressed data ({})", path_, msg ? msg : "zlib error"));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  bool at_end() {
    char c;
    return read(&c, 1) == 0;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

// Reads an IDX header and returns its dimensions; checks the magic number.
std::vector<std::int64_t> idx_header(GzFile& f, int want_dims) {
  unsigned char h[4];
  if (f.read(h, 4) != 4)
    throw Error(fmt::format("{}: truncated: no IDX header (file shorter than 4 bytes)", f.path()));
  if (h[0] != 0 || h[1] != 0)
    throw Error(
        fmt::format("{}: not an IDX file: wrong magic number 0x{:02x}{:02x}{:02x}{:02x} (expected "
                    "0x0000080{})",
                    f.path(), h[0], h[1], h[2], h[3], want_dims == 3 ? 3 : 1));
  if (h[2] != 0x08)
    throw Error(
        fmt::format("{}: IDX element type 0x{:02x} is not supported (only unsigned bytes, "
                    "0x08)",
                    f.path(), h[2]));
  if (h[3] != want_dims)
    throw Error(
        fmt::format("{}: wrong magic number 0x000008{:02x}: expected {} dimensions "
                    "(0x0000080{}), found {}",
                    f.path(), h[3], want_dims, want_dims, h[3]));
  std::vector<std::int64_t> dims;
  for (int i = 0; i < want_dims; ++i) {
    unsigned char d[4];
    if (f.read(d, 4) != 4)
      throw Error(fmt::format("{}: truncated inside the IDX header", f.path()));
    dims.push_back(be32(d));
  }
  return dims;
}

// Reads exactly n bytes, growing the buffer as data arrives, so a header that
// claims billions of items cannot make us allocate before the data exists.
std::vector<unsigned char> read_payload(GzFile& f, std::int64_t n) {
  std::vector<unsigned char> out;
  const std::size_t chunk = 1 << 20;
  while (static_cast<std::int64_t>(out.size()) < n) {
    const std::size_t want = std::min<std::size_t>(chunk, static_cast<std::size_t>(n) - out.size());
    const std::size_t old = out.size();
    out.resize(old + want);
    const std::size_t got = f.read(out.data() + old, want);
    if (got < want)
      throw Error(fmt::format("{}: truncated: the header promises {} data bytes, the file holds {}",
                              f.path(), n, old + got));
  }
  if (!f.at_end())
    throw Error(
        fmt::format("{}: trailing data after the {} bytes the header promises", f.path(), n));
  return out;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path) {
  GzFile fi(images_path);
  const auto dims = idx_header(fi, 3);
  GzFile fl(labels_path);
  const auto ldims = idx_header(fl, 1);
  if (dims[0] != ldims[0])
    throw Error(fmt::format("{} holds {} images but {} holds {} labels: the counts disagree",
                            images_path, dims[0], labels_path, ldims[0]));
  // Dimensions are 32-bit each: check the products before using them (a
  // hostile header must not overflow, nor make us allocate).
  std::int64_t features = 0, total = 0;
  if (__builtin_mul_overflow(dims[1], dims[2], &features) ||
      __builtin_mul_overflow(dims[0], features, &total) || total > (std::int64_t{1} << 40))
    throw Error(fmt::format(
        "{}: the header claims {} images of {}x{} pixels, more than this reader accepts "
        "(2^40 bytes)",
        images_path, dims[0], dims[1], dims[2]));
  if (features == 0 && dims[0] > 0)
    throw Error(
        fmt::format("{}: images of size {}x{} have no pixels", images_path, dims[1], dims[2]));
  const auto pixels = read_payload(fi, total);
  const auto labels = read_payload(fl, ldims[0]);
  Dataset d;
  d.n = dims[0];
  d.features = features;
  d.x.resize(pixels.size());
  for (std::size_t i = 0; i < pixels.size(); ++i) d.x[i] = static_cast<float>(pixels[i]) / 255.0f;
  d.y.assign(labels.begin(), labels.end());
  d.classes = d.y.empty() ? 0 : *std::max_element(d.y.begin(), d.y.end()) + 1;
  d.name = images_path;
  return d;
}

Dataset read_idx_folder(const std::string& folder, bool train) {
  const std::string stem = train ? "train" : "t10k";
  const auto pick = [&](const std::string& base) {
    for (const std::string& p : {folder + "/" + base + ".gz", folder + "/" + base})
      if (exists(p)) return p;
    throw Error(
        fmt::format("{}: no file {} or {}.gz in this folder (expected the four standard "
                    "MNIST-format file names)",
                    folder, base, base));
  };
  return read_idx(pick(stem + "-images-idx3-ubyte"), pick(stem + "-labels-idx1-ubyte"));
}

// ---- CSV ----

Dataset read_csv(const std::string& path, const std::string& label_column) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open for reading", path));
  std::string line;
  std::size_t lineno = 0;
  const auto split_line = [](const std::string& s) {
    std::vector<std::string> cells;
    std::string cur;
    for (char c : s) {
      if (c == ',')
        cells.push_back(cur), cur.clear();
      else if (c != '\r')
        cur += c;
    }
    cells.push_back(cur);
    return cells;
  };
  if (!std::getline(in, line))
    throw Error(fmt::format("{}: empty file (expected a header line)", path));
  ++lineno;
  const auto header = split_line(line);
  std::size_t label = header.size();
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == label_column) label = i;
  if (label == header.size() && !label_column.empty() &&
      std::all_of(label_column.begin(), label_column.end(), ::isdigit)) {
    label = std::stoul(label_column);
    if (label >= header.size())
      throw Error(
          fmt::format("{}: label column index {} is out of range (the header has {} columns)", path,
                      label, header.size()));
  }
  if (label == header.size())
    throw Error(fmt::format("{}: no column named '{}' in the header", path, label_column));
  if (header.size() < 2)
    throw Error(fmt::format("{}: needs a label column and at least one feature", path));
  Dataset d;
  d.features = static_cast<std::int64_t>(header.size() - 1);
  d.name = path;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_line(line);
    if (cells.size() != header.size())
      throw Error(fmt::format("{}:{}: {} cells, the header has {}", path, lineno, cells.size(),
                              header.size()));
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string& s = cells[c];
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(s.c_str(), &end);
      const bool blank = s.find_first_not_of(" \t") == std::string::npos;
      if (blank || end == s.c_str() || *end != '\0' || !std::isfinite(v))
        throw Error(fmt::format("{}:{}: column {} ('{}'): '{}' is not a number", path, lineno,
                                c + 1, header[c], s));
      if (c == label) {
        if (v < 0 || v != std::floor(v) || v > 1e6)
          throw Error(fmt::format("{}:{}: label '{}' in column {} must be a whole number >= 0",
                                  path, lineno, s, c + 1));
        d.y.push_back(static_cast<std::int32_t>(v));
      } else {
        d.x.push_back(static_cast<float>(v));
      }
    }
    ++d.n;
  }
  if (d.n == 0) throw Error(fmt::format("{}: no data rows after the header", path));
  d.classes = *std::max_element(d.y.begin(), d.y.end()) + 1;
  return d;
}

// ---- generated sets ----

Dataset make_xor(std::int64_t n, std::uint64_t seed, double noise) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> bit(0, 1);
  std::normal_distribution<double> g(0.0, noise);
  Dataset d{{}, {}, n, 2, 2, "xor"};
  for (std::int64_t i = 0; i < n; ++i) {
    const int a = bit(rng), b = bit(rng);
    d.x.push_back(static_cast<float>(a + g(rng)));
    d.x.push_back(static_cast<float>(b + g(rng)));
    d.y.push_back(a ^ b);
  }
  return d;
}

Dataset make_moons(std::int64_t n, std::uint64_t seed, double noise) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, std::acos(-1.0));
  std::normal_distribution<double> g(0.0, noise);
  Dataset d{{}, {}, n, 2, 2, "moons"};
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 2);
    const double t = u(rng);
    const double x = c ? 1 - std::cos(t) : std::cos(t), y = c ? 0.5 - std::sin(t) : std::sin(t);
    d.x.push_back(static_cast<float>(x + g(rng)));
    d.x.push_back(static_cast<float>(y + g(rng)));
    d.y.push_back(c);
  }
  return d;
}

Dataset make_spirals(std::int64_t n, std::int32_t classes, std::uint64_t seed, double noise) {
  if (classes < 2) throw Error("make_spirals: needs at least 2 classes");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> g(0.0, noise);
  Dataset d{{}, {}, n, 2, classes, "spirals"};
  const double pi = std::acos(-1.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % classes);
    const double r = u(rng);
    const double t = 4 * r + 2 * pi * c / classes + g(rng);
    d.x.push_back(static_cast<float>(r * std::sin(t)));
    d.x.push_back(static_cast<float>(r * std::cos(t)));
    d.y.push_back(c);
  }
  return d;
}

// ---- normalisation and splits ----

Normalizer Normalizer::fit(const Dataset& t) {
  Normalizer nz;
  nz.mean.assign(static_cast<std::size_t>(t.features), 0.0f);
  nz.inv_std.assign(static_cast<std::size_t>(t.features), 1.0f);
  for (std::int64_t f = 0; f < t.features; ++f) {
    double s = 0, s2 = 0;
    for (std::int64_t i = 0; i < t.n; ++i) {
      const double v = t.x[static_cast<std::size_t>(i * t.features + f)];
      s += v, s2 += v * v;
    }
    const double m = t.n ? s / static_cast<double>(t.n) : 0;
    const double var = t.n ? s2 / static_cast<double>(t.n) - m * m : 0;
    nz.mean[static_cast<std::size_t>(f)] = static_cast<float>(m);
    nz.inv_std[static_cast<std::size_t>(f)] =
        static_cast<float>(var > 1e-12 ? 1 / std::sqrt(var) : 1.0);
  }
  return nz;
}

void Normalizer::apply(Dataset& d) const {
  if (static_cast<std::int64_t>(mean.size()) != d.features)
    throw Error(fmt::format("normalizer fitted on {} features applied to {} features", mean.size(),
                            d.features));
  for (std::int64_t i = 0; i < d.n; ++i)
    for (std::int64_t f = 0; f < d.features; ++f) {
      float& v = d.x[static_cast<std::size_t>(i * d.features + f)];
      v = (v - mean[static_cast<std::size_t>(f)]) * inv_std[static_cast<std::size_t>(f)];
    }
}

std::pair<Dataset, Dataset> split(const Dataset& d, double test_fraction, std::uint64_t seed) {
  if (!(test_fraction > 0 && test_fraction < 1))
    throw Error(fmt::format("split: test fraction must lie in (0, 1), got {}", test_fraction));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(d.n));
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  const auto n_test =
      static_cast<std::int64_t>(std::llround(static_cast<double>(d.n) * test_fraction));
  Dataset a, b;
  for (Dataset* s : {&a, &b}) s->features = d.features, s->classes = d.classes, s->name = d.name;
  for (std::int64_t k = 0; k < d.n; ++k) {
    Dataset& t = k < d.n - n_test ? a : b;
    const std::int64_t i = idx[static_cast<std::size_t>(k)];
    const auto r = d.row(i);
    t.x.insert(t.x.end(), r.begin(), r.end());
    t.y.push_back(d.y[static_cast<std::size_t>(i)]);
    ++t.n;
  }
  return {std::move(a), std::move(b)};
}

// ---- batches ----

Batches::Batches(const Dataset& data, std::int64_t batch_size, std::uint64_t seed, bool shuffle)
    : data_(data), size_(batch_size), seed_(seed), shuffle_(shuffle) {
  if (batch_size <= 0)
    throw Error(fmt::format("batches: batch size must be positive, got {}", batch_size));
  start_epoch(0);
}

void Batches::start_epoch(std::int64_t e) {
  order_.resize(static_cast<std::size_t>(data_.n));
  std::iota(order_.begin(), order_.end(), 0);
  if (shuffle_) {
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(e));
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  pos_ = 0;
}

void Batches::set_shard(int rank, int size) {
  if (size <= 0 || rank < 0 || rank >= size)
    throw Error(fmt::format("batches: shard {} of {} does not exist", rank, size));
  rank_ = rank;
  shards_ = size;
}

bool Batches::next(std::vector<float>& x, std::vector<std::int32_t>& y) {
  if (pos_ >= data_.n) return false;
  global_rows_ = std::min(size_, data_.n - pos_);
  const std::int64_t rows =
      global_rows_ > rank_ ? (global_rows_ - rank_ + shards_ - 1) / shards_ : 0;
  x.resize(static_cast<std::size_t>(rows * data_.features));
  y.resize(static_cast<std::size_t>(rows));
  const int threads = rows * data_.features >= (1 << 14) ? tapegrad::num_threads() : 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t i = order_[static_cast<std::size_t>(pos_ + rank_ + r * shards_)];
    std::copy_n(data_.x.data() + i * data_.features, data_.features, x.data() + r * data_.features);
    y[static_cast<std::size_t>(r)] = data_.y[static_cast<std::size_t>(i)];
  }
  pos_ += global_rows_;
  return true;
}

}  // namespace tapegrad::nn
