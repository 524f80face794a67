// The MPI session and the collectives of dist.hpp. Built without MPI (or run
// without mpirun) every call is the one-process case: no communication.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "dist/mpi.hpp"
#include "tapegrad/dist.hpp"

namespace tapegrad::dist {

namespace {
int g_rank = 0, g_size = 1;
bool g_active = false;  // MPI initialised by a Session, with more than one rank

// The number of processes mpirun started, from its environment (Open MPI,
// then the PMI variables of other launchers); 0 when not under mpirun.
int launched_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return std::getenv("PMIX_RANK") ? 2 : 0;  // a PMIx launch that does not give the size
}

[[maybe_unused]] void check(int rc, const char* what) {
#ifdef TAPEGRAD_HAVE_MPI
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(fmt::format("{} failed on rank {}: {}", what, g_rank, std::string(text, len)));
  }
#else
  (void)rc, (void)what;
#endif
}
}  // namespace

bool built_with_mpi() {
#ifdef TAPEGRAD_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Session::Session(int& argc, char**& argv) {
  const int launched = launched_size();
#ifdef TAPEGRAD_HAVE_MPI
  if (launched <= 0) return;  // a plain process: no MPI start-up cost
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_active = g_size > 1;
#else
  (void)argc, (void)argv;
  if (launched > 1)
    throw Error(fmt::format(
        "started by mpirun as one of {} processes, but this tapegrad was built without MPI: "
        "each process would train alone and write the same files. Install libopenmpi-dev and "
        "rebuild (CMake option TAPEGRAD_WITH_MPI)",
        launched));
#endif
}

Session::~Session() {
#ifdef TAPEGRAD_HAVE_MPI
  int init = 0, done = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&done);
  if (init && !done) MPI_Finalize();
#endif
  g_rank = 0, g_size = 1, g_active = false;
}

int rank() { return g_rank; }
int size() { return g_size; }
bool active() { return g_active; }

int local_size() {
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) return std::max(1, std::atoi(v));
  return 1;
}

void barrier() {
#ifdef TAPEGRAD_HAVE_MPI
  if (g_active) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

#ifdef TAPEGRAD_HAVE_MPI
namespace {
void sum_in_place(void* data, std::size_t count, MPI_Datatype type) {
  if (g_active)
    check(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), type, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
}
}  // namespace
void sum(std::span<double> v) { sum_in_place(v.data(), v.size(), MPI_DOUBLE); }
void sum(std::span<float> v) { sum_in_place(v.data(), v.size(), MPI_FLOAT); }
#else
void sum(std::span<double>) {}
void sum(std::span<float>) {}
#endif

std::pair<std::uint64_t, std::uint64_t> min_max(std::uint64_t v) {
  std::uint64_t lo = v, hi = v;
#ifdef TAPEGRAD_HAVE_MPI
  if (g_active) {
    check(MPI_Allreduce(&v, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    check(MPI_Allreduce(&v, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  }
#endif
  return {lo, hi};
}

void broadcast(void* data, std::size_t bytes, int root) {
#ifdef TAPEGRAD_HAVE_MPI
  if (!g_active) return;
  // MPI counts are ints: large buffers go in pieces.
  auto* p = static_cast<unsigned char*>(data);
  constexpr std::size_t kPiece = std::size_t{1} << 30;
  for (std::size_t off = 0; off < bytes; off += kPiece)
    check(MPI_Bcast(p + off, static_cast<int>(std::min(kPiece, bytes - off)), MPI_BYTE, root,
                    MPI_COMM_WORLD),
          "MPI_Bcast");
#else
  (void)data, (void)bytes, (void)root;
#endif
}

void abort(std::string_view message, int code) {
  if (g_active && g_rank != 0) {
    // When rank 0 fails the same way (an error every rank meets), its abort
    // ends this process during the pause, and the message is printed once.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    fmt::print(stderr, "tapegrad: error on rank {} of {}: {}\n", g_rank, g_size, message);
  } else {
    fmt::print(stderr, "tapegrad: error: {}\n", message);
  }
  std::fflush(stderr);
#ifdef TAPEGRAD_HAVE_MPI
  if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

namespace {
std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
constexpr std::uint64_t kFnvBasis = 0xcbf29ce484222325ull;

// A hash of the parameters' names, dtypes and shapes: equal on every rank
// that built the same model.
std::uint64_t layout_hash(nn::Module& model) {
  std::uint64_t h = kFnvBasis;
  for (const auto& [name, p] : model.named_parameters()) {
    h = fnv1a(name.data(), name.size(), h);
    const auto d = static_cast<int>(p->dtype());
    const std::int64_t n = p->numel();
    h = fnv1a(&d, sizeof d, h);
    h = fnv1a(&n, sizeof n, h);
  }
  return h;
}
}  // namespace

void broadcast_parameters(nn::Module& model, nn::Optimizer* opt, int root) {
  if (!g_active) return;
  const auto [lo, hi] = min_max(layout_hash(model));
  if (lo != hi)
    throw Error(fmt::format(
        "broadcast_parameters: the ranks built different models (parameter names, types or "
        "sizes differ; layout hashes {:016x} to {:016x}): start every rank with the same "
        "options",
        lo, hi));
  for (nn::Parameter* p : model.parameters()) broadcast(p->raw_value(), p->bytes(), root);
  if (!opt) return;
  for (const nn::Optimizer::StateRef& s : opt->state()) broadcast(s.data, s.param->bytes(), root);
  std::int64_t steps = opt->steps();
  broadcast(&steps, sizeof steps, root);
  opt->set_steps(steps);
}

std::uint64_t parameter_hash(nn::Module& model) {
  std::uint64_t h = kFnvBasis;
  for (nn::Parameter* p : model.parameters()) h = fnv1a(p->raw_value(), p->bytes(), h);
  return h;
}

void check_replicas(nn::Module& model, std::int64_t step) {
  if (!g_active) return;
  const auto [lo, hi] = min_max(parameter_hash(model));
  if (lo != hi)
    throw Error(fmt::format(
        "the ranks' parameters differ after step {} (hashes {:016x} to {:016x}): the replicas "
        "diverged, so the run cannot go on. A rank skipped or changed an update; restart from "
        "the last checkpoint",
        step, lo, hi));
}

}  // namespace tapegrad::dist
