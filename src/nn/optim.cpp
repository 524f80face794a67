#include "tapegrad/nn/optim.hpp"

#include <fmt/format.h>

#include <omp.h>

#include <cmath>
#include <cstring>

#include <xmmintrin.h>

#include "slices.hpp"
#include "tapegrad/tape.hpp"
#include "tapegrad/threads.hpp"

namespace tapegrad::nn {

namespace {
// Sets the flush-to-zero and denormals-are-zero bits of this thread's SSE
// control register for its lifetime.
class DenormalsAreZero {
 public:
  DenormalsAreZero() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~DenormalsAreZero() { _mm_setcsr(saved_); }
  DenormalsAreZero(const DenormalsAreZero&) = delete;
  DenormalsAreZero& operator=(const DenormalsAreZero&) = delete;

 private:
  unsigned saved_;
};

// Below this many elements in all, an update runs on the calling thread:
// waking the other threads costs more than it saves.
constexpr std::int64_t kParallelElements = 32768;

// Runs f(i, begin, end) over the element ranges of the given parameters,
// cut evenly over the threads (slices::for_share: one parallel region for
// all of them, not one per parameter). Denormals are flushed to zero inside: the moments
// of parameters whose gradient stays 0 decay into denormal numbers, which
// cost ~100 cycles an operation.
template <class F>
void for_each_slice(std::span<Parameter* const> params, F&& f) {
  const std::int64_t total = slices::total_elements(params);
  const int threads = total >= kParallelElements ? num_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const DenormalsAreZero ftz;
    slices::for_share(params, omp_get_thread_num(), omp_get_num_threads(), f);
  }
}

// Calls f(lo, hi, grad) over elements [b, e) of p's gradient, where grad(k)
// is element k: once for a written gradient, or once per row for one kept as
// an outer product's factors, whose elements are formed here, never stored
// (the same a[r] * b[c], rounded once, that the written product holds).
// Lazily zeroed gradients must have been written out before.
template <class T, class F>
void with_grad(Parameter* p, std::int64_t b, std::int64_t e, F&& f) {
  if (const PendingGrad* o = p->grad_factors()) {
    const T* fa = static_cast<const T*>(o->a.data());
    const T* fb = static_cast<const T*>(o->b.data());
    const std::int64_t n = o->cols;
    for (std::int64_t r = b / n; r < o->rows && r * n < e; ++r) {
      const T ar = fa[r];
      const std::int64_t off = r * n;
      f(std::max(b, off), std::min(e, off + n), [=](std::int64_t k) { return ar * fb[k - off]; });
    }
    return;
  }
  const T* g = static_cast<const T*>(p->raw_grad());
  f(b, e, [=](std::int64_t k) { return g[k]; });
}
}  // namespace

Optimizer::Optimizer(std::vector<Parameter*> params, double lr)
    : params_(std::move(params)), lr_(lr) {
  if (!(lr > 0) || !std::isfinite(lr))
    throw Error(fmt::format("optimizer: learning rate must be a positive number, got {}", lr));
}

void Optimizer::zero_grad() {
  for (Parameter* p : params_) p->zero_grad();
}

void Optimizer::step() {
  if (in_step_) throw Error("optimizer: step() inside begin_step()/end_step()");
  ++steps_;
  prepare();
  for (Parameter* p : params_) settle(p);
  for_each_slice(params_,
                 [&](std::size_t i, std::int64_t b, std::int64_t e) { update_range(i, b, e); });
}

void Optimizer::begin_step() {
  if (in_step_) throw Error("optimizer: begin_step() twice without end_step()");
  ++steps_;
  prepare();
  updated_.assign(params_.size(), 0);
  in_step_ = true;
}

// One parameter, its elements cut over the threads when it is large.
void Optimizer::update(std::size_t i) {
  if (!in_step_) throw Error("optimizer: update() outside begin_step()/end_step()");
  if (i >= params_.size())
    throw Error(fmt::format("optimizer: no parameter {} (it has {})", i, params_.size()));
  if (updated_[i])
    throw Error(
        fmt::format("optimizer: parameter '{}' updated twice in one step", params_[i]->name()));
  updated_[i] = 1;
  settle(params_[i]);
  for_each_slice({&params_[i], 1},
                 [&](std::size_t, std::int64_t b, std::int64_t e) { update_range(i, b, e); });
}

void Optimizer::cancel_step() { in_step_ = false; }

void Optimizer::end_step() {
  if (!in_step_) throw Error("optimizer: end_step() without begin_step()");
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (!updated_[i]) update(i);
  in_step_ = false;
}

// Writes out a lazily zeroed gradient, and one kept as factors unless the
// update reads those itself (before the threads start: writing is not safe
// from several at once).
void Optimizer::settle(Parameter* p) const {
  if (!(reads_factors() && p->grad_factors())) p->raw_grad();
}

void Optimizer::init_state(std::vector<std::string> suffixes) {
  suffixes_ = std::move(suffixes);
  for (Parameter* p : params_) {
    auto& row = bufs_.emplace_back();
    for (std::size_t k = 0; k < suffixes_.size(); ++k) {
      Buffer b(p->bytes(), Parameter::state_offset(k));
      if (p->bytes()) std::memset(b.data(), 0, p->bytes());
      row.push_back(std::move(b));
    }
  }
}

std::vector<Optimizer::StateRef> Optimizer::state() {
  std::vector<StateRef> out;
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k = 0; k < suffixes_.size(); ++k)
      out.push_back({params_[i]->name() + "." + suffixes_[k], params_[i], bufs_[i][k].data()});
  return out;
}

SGD::SGD(std::vector<Parameter*> params, SGDOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  if (opt.momentum < 0 || opt.weight_decay < 0)
    throw Error("sgd: momentum and weight decay must not be negative");
  if (opt.momentum > 0) init_state({"momentum"});
}

// v = mu v + (g + wd w); w -= lr (nesterov ? g + mu v : v). Every sum of a
// product is an explicit fma: the compiler may not choose where to round, so
// a gradient read from factors (g = a[r] b[c], rounded) updates exactly as
// the written one does.
void SGD::update_range(std::size_t i, std::int64_t b, std::int64_t e) {
  Parameter* p = params_[i];
  dispatch_dtype(p->dtype(), [&](auto z) {
    using T = decltype(z);
    T* w = static_cast<T*>(p->raw_value());
    const T lr = static_cast<T>(lr_), wd = static_cast<T>(opt_.weight_decay),
            mu = static_cast<T>(opt_.momentum);
    T* v = opt_.momentum == 0 ? nullptr : static_cast<T*>(bufs_[i][0].data());
    with_grad<T>(p, b, e, [&](std::int64_t lo, std::int64_t hi, auto g) {
      if (!v) {
#pragma omp simd
        for (std::int64_t k = lo; k < hi; ++k) w[k] = std::fma(-lr, std::fma(wd, w[k], g(k)), w[k]);
      } else if (opt_.nesterov) {
#pragma omp simd
        for (std::int64_t k = lo; k < hi; ++k) {
          const T d = std::fma(wd, w[k], g(k));
          v[k] = std::fma(mu, v[k], d);
          w[k] = std::fma(-lr, std::fma(mu, v[k], d), w[k]);
        }
      } else {
#pragma omp simd
        for (std::int64_t k = lo; k < hi; ++k) {
          v[k] = std::fma(mu, v[k], std::fma(wd, w[k], g(k)));
          w[k] = std::fma(-lr, v[k], w[k]);
        }
      }
    });
  });
}

Adam::Adam(std::vector<Parameter*> params, AdamOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  if (!(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1))
    throw Error(fmt::format("adam: betas must lie in [0, 1), got {} and {}", opt.beta1, opt.beta2));
  init_state({"m", "v"});
}

void Adam::prepare() {
  c1_ = 1 - std::pow(opt_.beta1, static_cast<double>(steps_));
  c2_ = 1 - std::pow(opt_.beta2, static_cast<double>(steps_));
}

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
// Memory-bound: 7 values move per element.
void Adam::update_range(std::size_t i, std::int64_t b, std::int64_t e) {
  Parameter* p = params_[i];
  dispatch_dtype(p->dtype(), [&](auto z) {
    using T = decltype(z);
    T* w = static_cast<T*>(p->raw_value());
    T* m = static_cast<T*>(bufs_[i][0].data());
    T* v = static_cast<T*>(bufs_[i][1].data());
    const T b1 = static_cast<T>(opt_.beta1), b2 = static_cast<T>(opt_.beta2);
    const T c1 = 1 - b1, c2 = 1 - b2;
    const T step = static_cast<T>(lr_ / c1_), rc2 = static_cast<T>(1 / std::sqrt(c2_));
    const T eps = static_cast<T>(opt_.eps), decay = static_cast<T>(1 - lr_ * opt_.weight_decay);
    with_grad<T>(p, b, e, [&](std::int64_t lo, std::int64_t hi, auto g) {
#pragma omp simd
      for (std::int64_t k = lo; k < hi; ++k) {
        const T gk = g(k);
        m[k] = std::fma(b1, m[k], c1 * gk);
        v[k] = std::fma(b2, v[k], c2 * gk * gk);
        w[k] = std::fma(w[k], decay, -(step * m[k] / std::fma(std::sqrt(v[k]), rc2, eps)));
      }
    });
  });
}

FusedUpdate::FusedUpdate(Optimizer& opt, Tape& tape) : opt_(opt), tape_(tape) {
  const auto& params = opt.parameters();
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!index_.emplace(params[i]->raw_value(), i).second)
      throw Error(fmt::format("fused update: parameter '{}' is listed twice", params[i]->name()));
  leaves_left_.assign(params.size(), 0);
  if (tape_.leaf_hook())
    throw Error(
        "fused update: the tape's leaf hook is taken (by a dist::GradientReducer?); a tape "
        "has one hook, so sum gradients and fuse updates on different tapes, or call step()");
  tape_.set_leaf_hook(&FusedUpdate::on_leaf, this);
}

// A step cut short by an error keeps the updates done so far (those of the
// parameters the sweep had passed) and updates no more.
FusedUpdate::~FusedUpdate() {
  if (active_) opt_.cancel_step();
  tape_.set_leaf_hook(nullptr, nullptr);
}

void FusedUpdate::begin() {
  opt_.begin_step();
  std::fill(leaves_left_.begin(), leaves_left_.end(), 0);
  counted_ = false;
  active_ = true;
}

void FusedUpdate::finish() {
  if (!active_) throw Error("fused update: finish() without begin()");
  active_ = false;
  opt_.end_step();
}

void FusedUpdate::on_leaf(void* self, std::uint32_t leaf) {
  static_cast<FusedUpdate*>(self)->leaf_done(leaf);
}

// At the first leaf of the sweep (the highest), every parameter leaf of the
// step lies at or below it: count them, so that a parameter used twice is
// updated only after its second (lower) leaf, when all its uses have added
// to its gradient.
void FusedUpdate::leaf_done(std::uint32_t leaf) {
  if (!active_) return;  // a sweep outside begin()/finish(): no updates
  if (!counted_) {
    for (std::uint32_t t = 0; t <= leaf; ++t) {
      const TensorNode& n = tape_.tensor_node(t);
      if (n.op->backward || !n.requires_grad) continue;
      const auto it = index_.find(n.value);
      if (it != index_.end()) ++leaves_left_[it->second];
    }
    counted_ = true;
  }
  const auto it = index_.find(tape_.tensor_node(leaf).value);
  if (it == index_.end()) return;
  // A leaf not counted above, or one more than counted: a second sweep in
  // this step, whose gradient the update already made could not include.
  if (leaves_left_[it->second] <= 0)
    throw Error(fmt::format(
        "fused update: parameter '{}' is reached again after its update in this step (a "
        "second backward between begin() and finish()?); a fused update takes the gradient "
        "of one sweep: to add up several, use step()",
        opt_.parameters()[it->second]->name()));
  if (--leaves_left_[it->second] == 0) opt_.update(it->second);
}

}  // namespace tapegrad::nn
