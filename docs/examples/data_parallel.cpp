// Data-parallel training with the library, no command line: every rank runs
// this program, takes its share of each batch of 64, and the gradients are
// summed over the ranks during backward. Run it as
//
//   mpirun -np 2 ./example_data_parallel     (or as a plain process: one rank)
//
// It checks its own result: the moons are learnt and the replicas agree.
#include <fmt/format.h>
#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

int main(int argc, char** argv) {
  dist::Session mpi(argc, argv);  // MPI_Init under mpirun; nothing otherwise
  const nn::Dataset train = nn::make_moons(4000, 1), test = nn::make_moons(1000, 2);

  nn::MLP model({2, 32, 32, 2}, {.seed = 7});  // the same seed everywhere; rank 0's wins anyway
  nn::Adam adam(model.parameters(), {.lr = 0.01});
  nn::Trainer trainer(model, adam, {.epochs = 8, .batch_size = 64});
  dist::DataParallel data_parallel(trainer, {.check_every = 50});

  for (const nn::EpochMetrics& m : trainer.fit(train, &test))
    if (dist::is_root())
      fmt::print("epoch {}  train loss {:.4f}  test accuracy {:.1f}%  ({} ranks)\n", m.epoch,
                 m.train_loss, 100 * m.test_accuracy, dist::size());

  const auto [lo, hi] = dist::min_max(dist::parameter_hash(model));
  const double accuracy = trainer.history().back().test_accuracy;
  if (lo != hi || accuracy < 0.95) {
    fmt::print(stderr, "rank {}: replicas {} , test accuracy {:.3f}\n", dist::rank(),
               lo == hi ? "agree" : "differ", accuracy);
    return 1;
  }
  if (dist::is_root())
    fmt::print("all-reduce wait: {:.3f} ms per step over {} buckets\n",
               1e3 * data_parallel.reducer().wait_seconds() /
                   static_cast<double>(std::max<std::int64_t>(1, data_parallel.reducer().steps())),
               data_parallel.reducer().buckets());
  return 0;
}
