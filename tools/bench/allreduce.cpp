// Times the collective that data-parallel training leans on: dist::sum (an
// MPI_Allreduce) of float32 buffers of several sizes, median of many rounds,
// to fit the cost model of docs/distributed.md (a latency term alpha and a
// bandwidth term). Run under mpirun; rank 0 prints one line per size:
//
//   mpirun -np 2 build/release/tools/allreduce_bench [--json]
#include <fmt/format.h>
#include <tapegrad/dist.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace dist = tapegrad::dist;

int main(int argc, char** argv) {
  dist::Session mpi(argc, argv);
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;
  // 8 bytes (latency), then up to the Fashion-MNIST MLP's 235,146 float32
  // gradients and ten times that.
  const std::vector<std::size_t> sizes = {2, 256, 4096, 65536, 235146, 2351460};
  if (dist::is_root() && !json)
    fmt::print("all-reduce (sum) of float32 on {} ranks: median of rounds\n", dist::size());
  for (std::size_t n : sizes) {
    std::vector<float> buf(n, 1.0f);
    const int rounds = n > 1000000 ? 30 : 200;
    std::vector<double> t;
    for (int r = -5; r < rounds; ++r) {
      dist::barrier();
      const auto t0 = std::chrono::steady_clock::now();
      dist::sum(std::span<float>(buf));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 0) t.push_back(s);
    }
    std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
    const double med = t[t.size() / 2];
    const double bytes = 4.0 * static_cast<double>(n);
    if (!dist::is_root()) continue;
    if (json)
      fmt::print("{{\"ranks\": {}, \"bytes\": {}, \"seconds\": {:.3e}}}\n", dist::size(), bytes,
                 med);
    else
      fmt::print("  {:>10} bytes  {:9.1f} us  {:8.2f} GB/s algorithmic\n", bytes, 1e6 * med,
                 bytes / med / 1e9);
  }
  return 0;
}
