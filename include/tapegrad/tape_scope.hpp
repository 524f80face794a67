#pragma once
// The scoped switches of a tape: which tape is current, no-grad recording,
// anomaly detection, call sites and scope names. (Part of tape.hpp; include
// that.)
#include "tapegrad/tape.hpp"

namespace tapegrad {

// The calling thread's current tape (each thread starts with its own).
Tape& current_tape();

// Makes `tape` the current tape of this thread until the scope ends.
class TapeScope {
 public:
  explicit TapeScope(Tape& tape);
  ~TapeScope();
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* prev_;
};

// Records values without gradients on a tape (the current one by default)
// until the scope ends: every node created is a constant.
class NoGrad {
 public:
  explicit NoGrad(Tape& tape = current_tape()) : tape_(tape), prev_(tape.grad_enabled()) {
    tape.set_grad_enabled(false);
  }
  ~NoGrad() { tape_.set_grad_enabled(prev_); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  Tape& tape_;
  bool prev_;
};

// Turns on anomaly detection on a tape (the current one by default) until the
// scope ends.
class DetectAnomaly {
 public:
  explicit DetectAnomaly(Tape& tape = current_tape()) : tape_(tape), prev_(tape.anomaly_enabled()) {
    tape.set_anomaly_enabled(true);
  }
  ~DetectAnomaly() { tape_.set_anomaly_enabled(prev_); }
  DetectAnomaly(const DetectAnomaly&) = delete;
  DetectAnomaly& operator=(const DetectAnomaly&) = delete;

 private:
  Tape& tape_;
  bool prev_;
};

// Attributes the nodes created in its lifetime to the caller's line as well as
// to their own: Module::operator() uses it, so a NaN inside a layer names both
// the op inside the library and the user's `model(x)`. The outermost one wins
// (nested CallSites leave it alone), so wrap helper functions freely:
//
//   Tensor block(const Tensor& x, Site where = Site::current()) {
//     CallSite here(x.tape(), where);
//     return relu(matmul(x, w) + b);
//   }
class CallSite {
 public:
  CallSite(Tape& tape, Site where) : tape_(tape), prev_(tape.call_site()) {
    if (prev_.line() == 0) tape.set_call_site(where);
  }
  ~CallSite() { tape_.set_call_site(prev_); }
  CallSite(const CallSite&) = delete;
  CallSite& operator=(const CallSite&) = delete;

 private:
  Tape& tape_;
  Site prev_;
};

// Tags the tensor nodes created in its lifetime with a name (a layer's), so
// the DOT export can draw them as one cluster.
class ScopeName {
 public:
  ScopeName(Tape& tape, const std::string& name);
  ~ScopeName() { tape_.set_current_scope(prev_); }
  ScopeName(const ScopeName&) = delete;
  ScopeName& operator=(const ScopeName&) = delete;

 private:
  Tape& tape_;
  std::uint32_t prev_;
};

}  // namespace tapegrad
