// Gradient buckets summed while the backward sweep runs, and the trainer's
// data-parallel group (dist.hpp).
#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "dist/mpi.hpp"
#include "tapegrad/dist.hpp"
#include "tapegrad/tape.hpp"

namespace tapegrad::dist {

struct GradientReducer::Requests {
#ifdef TAPEGRAD_HAVE_MPI
  std::vector<MPI_Request> r;
#endif
};

GradientReducer::GradientReducer(std::vector<nn::Parameter*> params, Tape& tape,
                                 ReducerOptions options)
    : params_(std::move(params)), tape_(tape), requests_(std::make_unique<Requests>()) {
  bucket_of_.resize(params_.size());
  leaves_left_.assign(params_.size(), 0);
  // Backward finishes the last layers first: buckets take the parameters in
  // reverse order, one dtype per bucket.
  for (std::size_t k = params_.size(); k-- > 0;) {
    nn::Parameter* p = params_[k];
    if (!index_.emplace(p->raw_value(), k).second)
      throw Error(fmt::format("gradient reducer: parameter '{}' is listed twice", p->name()));
    const bool fits = !buckets_.empty() &&
                      buckets_.back().bytes + p->bytes() <= options.bucket_bytes &&
                      params_[buckets_.back().params.front()]->dtype() == p->dtype();
    if (!fits) buckets_.emplace_back();
    buckets_.back().params.push_back(k);
    buckets_.back().bytes += p->bytes();
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_)
    if (b.params.size() > 1) b.packed.resize(b.bytes);
#ifdef TAPEGRAD_HAVE_MPI
  requests_->r.assign(buckets_.size(), MPI_REQUEST_NULL);
#endif
  reset();
  attach();
}

GradientReducer::~GradientReducer() { detach(); }

void GradientReducer::attach() {
  if (!active()) return;
  if (tape_.leaf_hook() && tape_.leaf_hook() != &GradientReducer::on_leaf)
    throw Error(
        "gradient reducer: the tape's leaf hook is taken (by an nn::FusedUpdate?); a tape "
        "has one hook");
  tape_.set_leaf_hook(&GradientReducer::on_leaf, this);
}
void GradientReducer::detach() {
  if (active()) tape_.set_leaf_hook(nullptr, nullptr);
}

void GradientReducer::reset() {
  for (Bucket& b : buckets_) b.waiting = 0;
  std::fill(leaves_left_.begin(), leaves_left_.end(), 0);
  next_ = 0;
  counted_ = false;
}

void GradientReducer::on_leaf(void* self, std::uint32_t leaf) {
  static_cast<GradientReducer*>(self)->leaf_done(leaf);
}

// At the first leaf of a sweep (the highest one), every parameter leaf of
// the step lies at or below it: count them, so a parameter used twice is
// final only at its second (lower) leaf.
void GradientReducer::count_leaves(std::uint32_t up_to) {
  for (std::uint32_t t = 0; t <= up_to; ++t) {
    const TensorNode& n = tape_.tensor_node(t);
    if (n.op->backward || !n.requires_grad) continue;
    const auto it = index_.find(n.value);
    if (it == index_.end()) continue;
    if (leaves_left_[it->second]++ == 0) ++buckets_[bucket_of_[it->second]].waiting;
  }
  counted_ = true;
}

void GradientReducer::leaf_done(std::uint32_t leaf) {
  if (!counted_) count_leaves(leaf);
  const auto it = index_.find(tape_.tensor_node(leaf).value);
  if (it == index_.end()) return;
  if (--leaves_left_[it->second] == 0) --buckets_[bucket_of_[it->second]].waiting;
  start_ready();
#ifdef TAPEGRAD_HAVE_MPI
  // Non-blocking collectives move on only inside MPI calls: look in.
  if (next_ > 0) {
    int done = 0;
    MPI_Testall(static_cast<int>(next_), requests_->r.data(), &done, MPI_STATUSES_IGNORE);
  }
#endif
}

void GradientReducer::start_ready() {
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) start(buckets_[next_++]);
}

void GradientReducer::start(Bucket& b) {
#ifdef TAPEGRAD_HAVE_MPI
  const std::size_t i = static_cast<std::size_t>(&b - buckets_.data());
  nn::Parameter& first = *params_[b.params.front()];
  const MPI_Datatype type = first.dtype() == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
  void* data = nullptr;
  if (b.packed.empty()) {
    data = first.raw_grad();  // zeroes a gradient that no rule wrote
  } else {
    std::size_t off = 0;
    for (std::size_t k : b.params) {
      nn::Parameter& p = *params_[k];
      std::memcpy(b.packed.data() + off, p.raw_grad(), p.bytes());
      off += p.bytes();
    }
    data = b.packed.data();
  }
  const auto count = static_cast<int>(b.bytes / dtype_size(first.dtype()));
  const int rc =
      MPI_Iallreduce(MPI_IN_PLACE, data, count, type, MPI_SUM, MPI_COMM_WORLD, &requests_->r[i]);
  if (rc != MPI_SUCCESS)
    throw Error(fmt::format("MPI_Iallreduce of gradient bucket {} failed on rank {}", i, rank()));
#else
  (void)b;
#endif
}

void GradientReducer::finish() {
  ++steps_;
  if (!active()) return;
  // Buckets whose parameters the sweep did not reach (no rows on this rank,
  // or unused parameters) start now, still in order.
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  const auto t0 = std::chrono::steady_clock::now();
#ifdef TAPEGRAD_HAVE_MPI
  const int rc =
      MPI_Waitall(static_cast<int>(buckets_.size()), requests_->r.data(), MPI_STATUSES_IGNORE);
  if (rc != MPI_SUCCESS)
    throw Error(fmt::format("MPI_Waitall on the gradient buckets failed on rank {}", rank()));
#endif
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Bucket& b : buckets_) {
    if (b.packed.empty()) continue;
    std::size_t off = 0;
    for (std::size_t k : b.params) {
      nn::Parameter& p = *params_[k];
      std::memcpy(p.raw_grad(), b.packed.data() + off, p.bytes());
      off += p.bytes();
    }
  }
  reset();
}

DataParallel::DataParallel(nn::Trainer& trainer, DataParallelOptions options)
    : trainer_(trainer),
      opt_(options),
      reducer_(trainer.model().parameters(), trainer.tape(), options.reducer) {
  if (opt_.check_every < 0)
    throw Error(fmt::format("data parallel: check_every must be >= 0, got {}", opt_.check_every));
  // The sweep is hooked only while fit() runs: a backward outside it (one
  // rank drawing a graph) must not start collectives the others never join.
  reducer_.detach();
  if (!active()) return;
  trainer.set_group(this);
  trainer.add_callback(*this);
}

DataParallel::~DataParallel() {
  if (trainer_.group() == this) trainer_.set_group(nullptr);
}

void DataParallel::on_fit_begin(nn::Trainer& t) {
  std::int64_t done = t.epochs_done();
  broadcast(&done, sizeof done, 0);
  t.set_epochs_done(done);
  broadcast_parameters(t.model(), &t.optimizer(), 0);
  reducer_.attach();
}

void DataParallel::on_after_backward(nn::Trainer&, const nn::StepInfo&) { reducer_.finish(); }

void DataParallel::on_step_end(nn::Trainer& t, const nn::StepInfo& s) {
  if (opt_.check_every > 0 && (s.global_step + 1) % opt_.check_every == 0)
    check_replicas(t.model(), s.global_step + 1);
}

void DataParallel::on_fit_end(nn::Trainer&) { reducer_.detach(); }

}  // namespace tapegrad::dist
