#pragma once
// Data sets for training: IDX files (MNIST, Fashion-MNIST; plain or gzip),
// CSV files, small generated sets, and seeded shuffled mini-batches.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace tapegrad::nn {

// n samples of `features` float32 values each (row-major), with an integer
// class label per sample.
struct Dataset {
  std::vector<float> x{};
  std::vector<std::int32_t> y{};
  std::int64_t n = 0;
  std::int64_t features = 0;
  std::int32_t classes = 0;  // 1 + the largest label
  std::string name{};
  std::span<const float> row(std::int64_t i) const {
    return {x.data() + i * features, static_cast<std::size_t>(features)};
  }
};

// Reads an images file (magic 0x00000803, unsigned bytes, N x rows x cols) and
// a labels file (0x00000801, N bytes), each plain or gzip-compressed. Pixel
// values are scaled to [0, 1]. Errors name the file and what is wrong.
Dataset read_idx(const std::string& images_path, const std::string& labels_path);
// Fashion-MNIST or MNIST in a folder with the four standard file names
// (train-images-idx3-ubyte[.gz], ...); `train` picks the training or test pair.
Dataset read_idx_folder(const std::string& folder, bool train);
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// A CSV of numbers with a header line. The label column is chosen by name or
// by 0-based index (as a string of digits); its values must be whole numbers
// >= 0. Every other column is a feature. Errors give the line and column.
Dataset read_csv(const std::string& path, const std::string& label_column);

// Generated sets, the same for the same seed.
Dataset make_xor(std::int64_t n, std::uint64_t seed, double noise = 0.1);
Dataset make_moons(std::int64_t n, std::uint64_t seed, double noise = 0.1);
Dataset make_spirals(std::int64_t n, std::int32_t classes, std::uint64_t seed, double noise = 0.2);

// Per-feature mean and standard deviation of `train`.
struct Normalizer {
  std::vector<float> mean, inv_std;
  static Normalizer fit(const Dataset& train);
  void apply(Dataset& d) const;
};
// Splits off the last `fraction` of a shuffled copy as a test set.
std::pair<Dataset, Dataset> split(const Dataset& d, double test_fraction, std::uint64_t seed);

// Shuffled mini-batches: a new permutation each epoch from a seeded generator.
// The last batch of an epoch may be smaller.
class Batches {
 public:
  Batches(const Dataset& data, std::int64_t batch_size, std::uint64_t seed, bool shuffle = true);
  // Starts epoch `e` (the permutation depends on seed and e only, so a resumed
  // run sees the same batches).
  void start_epoch(std::int64_t e);
  // Fills x (rows x features) and y; returns false at the end of the epoch.
  bool next(std::vector<float>& x, std::vector<std::int32_t>& y);
  std::int64_t batches_per_epoch() const { return (data_.n + size_ - 1) / size_; }
  // Data-parallel runs: this process takes rows rank, rank + size, ... of
  // every batch, so `size` processes together see exactly the batches one
  // process sees, and next() fills only this process's share (which may be
  // empty in a last batch smaller than `size`; next() still returns true).
  void set_shard(int rank, int size);
  // Rows of the batch next() last filled, over all processes.
  std::int64_t global_rows() const { return global_rows_; }

 private:
  const Dataset& data_;
  std::int64_t size_;
  std::uint64_t seed_;
  bool shuffle_;
  std::vector<std::int64_t> order_;
  std::int64_t pos_ = 0;
  int rank_ = 0, shards_ = 1;
  std::int64_t global_rows_ = 0;
};

// The same batches, each gathered on a thread of its own while the caller
// trains on the one before: next() hands over a batch gathered during the
// previous step and starts on the following one. Gathering rows scattered
// over a data set far larger than the caches is bound by memory latency
// (docs/design.md, "Batches"); this way it overlaps the step
// instead of adding to it. The wrapped Batches must not be used directly
// while this object lives (set_shard before the first start_epoch).
class BatchesAhead {
 public:
  explicit BatchesAhead(Batches& batches);
  ~BatchesAhead();
  BatchesAhead(const BatchesAhead&) = delete;
  BatchesAhead& operator=(const BatchesAhead&) = delete;
  void start_epoch(std::int64_t e);
  // As Batches::next. The buffers x held before are swapped into this
  // object and refilled two calls later, never while the caller may still
  // read them (the step that used them has ended by then).
  bool next(std::vector<float>& x, std::vector<std::int32_t>& y);
  std::int64_t global_rows() const { return rows_; }
  std::int64_t batches_per_epoch() const { return batches_.batches_per_epoch(); }

 private:
  void run();
  void wait_idle(std::unique_lock<std::mutex>& lock);
  Batches& batches_;
  std::vector<float> x_[2];
  std::vector<std::int32_t> y_[2];
  std::int64_t ahead_rows_ = 0, rows_ = 0;
  bool more_ = false;
  int fill_ = 0;  // the buffer the worker fills next
  enum class State { idle, asked, done } state_ = State::idle;
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex m_;
  std::condition_variable cv_;
  std::thread worker_;
};

}  // namespace tapegrad::nn
