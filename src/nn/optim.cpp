#include "tapegrad/nn/optim.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include <xmmintrin.h>

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
}  // namespace

Optimizer::Optimizer(std::vector<Parameter*> params, double lr)
    : params_(std::move(params)), lr_(lr) {
  if (!(lr > 0) || !std::isfinite(lr))
    throw Error(fmt::format("optimizer: learning rate must be a positive number, got {}", lr));
}

void Optimizer::zero_grad() {
  for (Parameter* p : params_) p->zero_grad();
}

void Optimizer::init_state(std::vector<std::string> suffixes) {
  suffixes_ = std::move(suffixes);
  for (Parameter* p : params_) {
    auto& row = bufs_.emplace_back();
    for (std::size_t k = 0; k < suffixes_.size(); ++k) {
      Buffer b(p->bytes());
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

// v = mu v + (g + wd w); w -= lr (nesterov ? g + mu v : v)
void SGD::step() {
  ++steps_;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter* p = params_[i];
    dispatch_dtype(p->dtype(), [&](auto z) {
      using T = decltype(z);
      auto w = p->value<T>();
      auto g = p->grad<T>();
      const T lr = static_cast<T>(lr_), wd = static_cast<T>(opt_.weight_decay),
              mu = static_cast<T>(opt_.momentum);
      T* v = opt_.momentum > 0 ? static_cast<T*>(bufs_[i][0].data()) : nullptr;
      for (std::size_t k = 0; k < w.size(); ++k) {
        T d = g[k] + wd * w[k];
        if (v) {
          v[k] = mu * v[k] + d;
          d = opt_.nesterov ? d + mu * v[k] : v[k];
        }
        w[k] -= lr * d;
      }
    });
  }
}

Adam::Adam(std::vector<Parameter*> params, AdamOptions opt)
    : Optimizer(std::move(params), opt.lr), opt_(opt) {
  if (!(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1))
    throw Error(fmt::format("adam: betas must lie in [0, 1), got {} and {}", opt.beta1, opt.beta2));
  init_state({"m", "v"});
}

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
void Adam::step() {
  ++steps_;
  const double c1 = 1 - std::pow(opt_.beta1, static_cast<double>(steps_));
  const double c2 = 1 - std::pow(opt_.beta2, static_cast<double>(steps_));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter* p = params_[i];
    dispatch_dtype(p->dtype(), [&](auto z) {
      using T = decltype(z);
      auto w = p->value<T>();
      auto g = p->grad<T>();
      T* m = static_cast<T*>(bufs_[i][0].data());
      T* v = static_cast<T*>(bufs_[i][1].data());
      const T b1 = static_cast<T>(opt_.beta1), b2 = static_cast<T>(opt_.beta2);
      const T step = static_cast<T>(lr_ / c1), rc2 = static_cast<T>(1 / std::sqrt(c2));
      const T eps = static_cast<T>(opt_.eps), decay = static_cast<T>(1 - lr_ * opt_.weight_decay);
      T* wp = w.data();
      const T* gp = g.data();
      const auto n = static_cast<std::int64_t>(w.size());
      // Memory-bound (7 values per element): split over the threads when
      // large. Moments of parameters whose gradient stays 0 decay into
      // denormal numbers, which cost ~100 cycles each: flush them to zero.
#pragma omp parallel if (n >= 65536)
      {
        const DenormalsAreZero ftz;
#pragma omp for simd schedule(static)
        for (std::int64_t k = 0; k < n; ++k) {
          m[k] = b1 * m[k] + (1 - b1) * gp[k];
          v[k] = b2 * v[k] + (1 - b2) * gp[k] * gp[k];
          wp[k] = wp[k] * decay - step * m[k] / (std::sqrt(v[k]) * rc2 + eps);
        }
      }
    });
  }
}

}  // namespace tapegrad::nn
