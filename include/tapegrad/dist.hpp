#pragma once
// Data-parallel training over MPI: every process (rank) holds the whole
// model, takes its share of every batch, and the gradients are summed over
// the ranks before each update, so N ranks take the steps one process takes
// with the same global batch.
//
//   int main(int argc, char** argv) {
//     tg::dist::Session mpi(argc, argv);          // MPI_Init ... MPI_Finalize
//     nn::MLP model({784, 256, 10});
//     nn::Adam adam(model.parameters(), {});
//     nn::Trainer trainer(model, adam, {.batch_size = 256});
//     tg::dist::DataParallel dp(trainer);         // shards, sums, checks
//     trainer.fit(train, &test);                   // on every rank
//   }
//
// and `mpirun -np 4 ./program`. Pieces for a loop written by hand:
// broadcast_parameters, GradientReducer, check_replicas.
//
// Without MPI (built without it, or a process not started by mpirun) this
// is a world of one process: every call works and does no communication.
// The header does not include <mpi.h>.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/nn/trainer.hpp"

namespace tapegrad::dist {

// True when tapegrad was built with MPI (CMake option TAPEGRAD_WITH_MPI).
bool built_with_mpi();

// Starts MPI for the process's lifetime when it was launched by mpirun
// (MPI_Init_thread, funneled: only the thread that made the Session calls
// MPI), and ends it (MPI_Finalize). One Session per process.
class Session {
 public:
  Session(int& argc, char**& argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

int rank();        // this process, from 0
int size();        // processes in the run
int local_size();  // processes on this machine (for threads per process)
inline bool is_root() { return rank() == 0; }
bool active();  // a Session started MPI with more than one process

void barrier();
// Element-wise sum over all ranks, in place.
void sum(std::span<double> values);
void sum(std::span<float> values);
// Both the smallest and the largest value of `v` over all ranks.
std::pair<std::uint64_t, std::uint64_t> min_max(std::uint64_t v);
// Copies `bytes` bytes from rank `root` to every rank.
void broadcast(void* data, std::size_t bytes, int root = 0);

// Every parameter's values (and, with `opt`, the optimiser's state and step
// count) copied from rank `root`, in the model's parameter order.
void broadcast_parameters(nn::Module& model, nn::Optimizer* opt = nullptr, int root = 0);

// A 64-bit hash (FNV-1a) of every parameter's bytes.
std::uint64_t parameter_hash(nn::Module& model);
// All ranks compare their parameter hashes; when they differ, every rank
// throws an Error naming the step and the hashes (the replicas diverged:
// a rank skipped an update or computed it differently).
void check_replicas(nn::Module& model, std::int64_t step);

// Ends every rank: prints "tapegrad: error[ on rank r]: message" on stderr
// and calls MPI_Abort (exit(code) in a one-process world). For an error on
// one rank that the others cannot know about; mpirun then exits non-zero.
[[noreturn]] void abort(std::string_view message, int code = 1);

struct ReducerOptions {
  // Gradients are summed in buckets of about this many bytes, each started
  // as soon as the backward sweep has finished its parameters.
  std::size_t bucket_bytes = 256 * 1024;
};

// Sums the parameters' gradients over all ranks, overlapping communication
// with the backward sweep: it hooks `tape`'s sweep, and when the sweep has
// passed every leaf of the parameters in a bucket, that bucket's
// MPI_Iallreduce starts. Buckets hold parameters in reverse order (the order
// backward finishes them) and start in that fixed order on every rank.
// finish() waits for all of them and leaves the sums in the gradients.
// Parameters that got no gradient in the step count as zeros. While it is
// attached, every backward on the tape must be followed by finish() on
// every rank (a backward of one rank only would start collectives the
// others never join: detach() first).
class GradientReducer {
 public:
  GradientReducer(std::vector<nn::Parameter*> params, Tape& tape, ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // After backward (or instead of it, for a rank without rows): every
  // gradient summed over the ranks.
  void finish();
  // Hooks the tape's sweep (the constructor does) or stops doing so.
  void attach();
  void detach();

  std::size_t buckets() const { return buckets_.size(); }
  // Buckets already sent in this step (after a backward, before finish():
  // those the sweep started while it ran).
  std::size_t buckets_started() const { return next_; }
  // Seconds finish() spent waiting for communication, over all steps.
  double wait_seconds() const { return wait_seconds_; }
  std::int64_t steps() const { return steps_; }

 private:
  struct Bucket {
    std::vector<std::size_t> params;    // indices into params_
    std::vector<unsigned char> packed;  // empty when the bucket is one parameter
    std::size_t bytes = 0;
    int waiting = 0;  // parameters not final yet in this step
  };
  static void on_leaf(void* self, std::uint32_t leaf);
  void leaf_done(std::uint32_t leaf);
  void count_leaves(std::uint32_t up_to);
  void start_ready();
  void start(Bucket& b);
  void reset();

  std::vector<nn::Parameter*> params_;
  Tape& tape_;
  std::vector<std::size_t> bucket_of_;
  std::vector<int> leaves_left_;  // per parameter, in this step
  std::vector<Bucket> buckets_;
  std::unordered_map<const void*, std::size_t> index_;  // parameter value -> params_ index
  struct Requests;                                      // the MPI_Requests of the buckets
  std::unique_ptr<Requests> requests_;
  std::size_t next_ = 0;  // the next bucket to start (they start in order)
  bool counted_ = false;
  double wait_seconds_ = 0;
  std::int64_t steps_ = 0;
};

struct DataParallelOptions {
  ReducerOptions reducer{};
  // Compare the parameters across ranks every this many steps (0: never).
  std::int64_t check_every = 100;
};

// Makes an nn::Trainer data-parallel: it becomes the trainer's process group
// (each rank takes rows rank, rank + N, ... of every global batch; losses and
// metrics are summed), broadcasts rank 0's parameters, optimiser state and
// epoch count when fit() begins (so a resume on rank 0 reaches every rank),
// sums the gradients during backward, and checks the replicas every
// check_every steps. Only rank 0 writes the trainer's checkpoint. With one
// process it changes nothing. Make it before adding other callbacks: it sums
// the gradients in on_after_backward, and callbacks after it see the sums.
class DataParallel : public nn::Callback, public nn::ProcessGroup {
 public:
  explicit DataParallel(nn::Trainer& trainer, DataParallelOptions options = {});
  ~DataParallel() override;

  int rank() const override { return dist::rank(); }
  int size() const override { return dist::size(); }
  void sum(std::span<double> values) override { dist::sum(values); }

  void on_fit_begin(nn::Trainer&) override;
  void on_after_backward(nn::Trainer&, const nn::StepInfo&) override;
  void on_step_end(nn::Trainer&, const nn::StepInfo&) override;
  void on_fit_end(nn::Trainer&) override;

  const GradientReducer& reducer() const { return reducer_; }

 private:
  nn::Trainer& trainer_;
  DataParallelOptions opt_;
  GradientReducer reducer_;
};

}  // namespace tapegrad::dist
