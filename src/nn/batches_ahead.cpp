#include "tapegrad/nn/data.hpp"

#include <utility>

#include "tapegrad/threads.hpp"

namespace tapegrad::nn {

BatchesAhead::BatchesAhead(Batches& batches) : batches_(batches), worker_([this] { run(); }) {}

BatchesAhead::~BatchesAhead() {
  {
    const std::lock_guard lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BatchesAhead::run() {
  set_num_threads(1);  // this thread is the spare core: no team of its own
  std::unique_lock lock(m_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || state_ == State::asked; });
    if (stop_) return;
    const int k = fill_;
    lock.unlock();
    bool more = false;
    std::int64_t rows = 0;
    std::exception_ptr error;
    try {
      more = batches_.next(x_[k], y_[k]);
      rows = batches_.global_rows();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    more_ = more, ahead_rows_ = rows, error_ = error;
    state_ = State::done;
    cv_.notify_all();
  }
}

void BatchesAhead::wait_idle(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [&] { return state_ != State::asked; });
}

void BatchesAhead::start_epoch(std::int64_t e) {
  std::unique_lock lock(m_);
  wait_idle(lock);
  batches_.start_epoch(e);
  error_ = nullptr;
  state_ = State::asked;
  lock.unlock();
  cv_.notify_all();
}

bool BatchesAhead::next(std::vector<float>& x, std::vector<std::int32_t>& y) {
  std::unique_lock lock(m_);
  wait_idle(lock);
  if (state_ == State::idle) return false;  // no epoch started, or it has ended
  if (error_) {
    state_ = State::idle;
    std::rethrow_exception(std::exchange(error_, nullptr));
  }
  if (!more_) {
    state_ = State::idle;
    return false;
  }
  // The caller's old buffers take the place of the batch handed over; the
  // worker fills the other pair, which the caller gave back a call earlier.
  const int k = fill_;
  x.swap(x_[k]);
  y.swap(y_[k]);
  rows_ = ahead_rows_;
  fill_ = k ^ 1;
  state_ = State::asked;
  lock.unlock();
  cv_.notify_all();
  return true;
}

}  // namespace tapegrad::nn
