#pragma once
// `tapegrad train`: options and the training run.
#include <cstdint>
#include <string>
#include <vector>

namespace tapegrad::cli {

struct TrainOptions {
  std::string data =
      "fashion-mnist";              // fashion-mnist | mnist:DIR | csv:PATH | xor | moons | spirals
  std::string csv_label = "label";  // label column of a CSV (name or 0-based index)
  std::vector<std::int64_t> hidden = {256, 128};
  std::string activation = "relu";
  std::string loss = "ce";         // ce | mse
  std::string optimizer = "adam";  // adam | sgd
  double lr = 1e-3;
  double momentum = 0.9;  // sgd only
  double weight_decay = 0.0;
  std::string schedule = "cosine";  // cosine | constant
  std::int64_t batch_size = 64;
  std::int64_t epochs = 10;
  std::uint64_t seed = 1;
  int threads = 0;            // 0: all cores
  std::int64_t replicas = 0;  // batch shares run at once on their own threads; 0: auto
  std::string out = "runs/fashion-mnist";
  bool resume = false;
  bool quiet = false;
  bool plot = true;
  bool graph = true;   // graph.svg of one training step
  bool report = true;  // report.html: curves, gradient statistics, step explorer
  // Update each parameter inside the backward sweep: on | off | auto (on
  // for batches of one row with two or more threads, where it measured
  // faster; docs/performance.md).
  std::string fused_update = "auto";
  bool checkpoint_layers = false;  // recompute each layer in the backward sweep (less tape memory)
  std::int64_t limit = 0;          // use only the first N training samples (0: all)
  std::int64_t check_every = 100;  // under mpirun: compare parameters across ranks every N steps
};

// Runs training and writes the outputs; returns the process exit code.
int run_train(const TrainOptions& opt);

}  // namespace tapegrad::cli
