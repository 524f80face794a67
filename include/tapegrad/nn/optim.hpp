#pragma once
// Optimisers update parameters from their gradients; backward computes them.
#include <string>
#include <unordered_map>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Parameter*> params, double lr);
  virtual ~Optimizer() = default;
  // Updates every parameter from its gradient.
  void step();
  virtual const char* kind() const = 0;

  // The same step in parts, for updates fused into the backward sweep
  // (FusedUpdate below): begin_step(), then update(i) for parameters whose
  // gradient is final, in any order, then end_step(), which updates the
  // parameters not updated yet. Together they compute exactly step().
  void begin_step();
  void update(std::size_t i);
  void end_step();
  // Ends a step in parts without updating the parameters left (after an
  // error); those updated stay updated.
  void cancel_step();
  const std::vector<Parameter*>& parameters() const { return params_; }

  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  std::int64_t steps() const { return steps_; }
  // Named state buffers (momentum, moments), for checkpoints: one entry per
  // parameter and buffer, same dtype and shape as the parameter.
  struct StateRef {
    std::string name;
    Parameter* param;
    void* data;
  };
  std::vector<StateRef> state();
  void set_steps(std::int64_t s) { steps_ = s; }

 protected:
  // The step's constants (bias corrections), set before any update_range.
  virtual void prepare() {}
  // Updates elements [b, e) of parameter i; called from several threads at
  // once on disjoint ranges. Every gradient is written out before (raw_grad()
  // is safe), unless reads_factors() says the update reads a gradient kept
  // as factors (Parameter::grad_factors) itself.
  virtual void update_range(std::size_t i, std::int64_t b, std::int64_t e) = 0;
  virtual bool reads_factors() const { return false; }
  // Allocates `count` zeroed state buffers per parameter, named by suffix.
  void init_state(std::vector<std::string> suffixes);
  std::vector<Parameter*> params_;
  std::vector<std::string> suffixes_;
  std::vector<std::vector<Buffer>> bufs_;  // [param][suffix]
  double lr_;
  std::int64_t steps_ = 0;

 private:
  void settle(Parameter* p) const;
  std::vector<char> updated_;  // per parameter, during a step in parts
  bool in_step_ = false;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};
class SGD : public Optimizer {
 public:
  SGD(std::vector<Parameter*> params, SGDOptions opt);
  const char* kind() const override { return "sgd"; }

 protected:
  void update_range(std::size_t i, std::int64_t b, std::int64_t e) override;
  bool reads_factors() const override { return true; }

 private:
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW) when > 0
};
class Adam : public Optimizer {
 public:
  Adam(std::vector<Parameter*> params, AdamOptions opt);
  const char* kind() const override { return "adam"; }

 protected:
  void prepare() override;
  void update_range(std::size_t i, std::int64_t b, std::int64_t e) override;
  bool reads_factors() const override { return true; }

 private:
  AdamOptions opt_;
  double c1_ = 1, c2_ = 1;  // bias corrections of the current step
};

// Runs an optimiser's update inside the backward sweep: each parameter is
// updated as soon as the sweep has passed its last leaf on `tape` (its
// gradient is final then), while that gradient is still in cache, instead of
// in a pass over all parameters after the sweep. The result is exactly that
// of backward() followed by step(). It holds the tape's leaf hook while it
// lives, so it cannot be combined with another hook (dist::GradientReducer),
// and nothing may read or change gradients between backward and the update
// (clipping, gradient callbacks): use step() then.
//
//   nn::FusedUpdate fused(adam, tape);
//   adam.zero_grad();
//   fused.begin();
//   loss.backward();   // updates the parameters as it goes
//   fused.finish();    // updates those the sweep did not reach
class FusedUpdate {
 public:
  FusedUpdate(Optimizer& opt, Tape& tape);
  ~FusedUpdate();
  FusedUpdate(const FusedUpdate&) = delete;
  FusedUpdate& operator=(const FusedUpdate&) = delete;
  void begin();
  void finish();

 private:
  static void on_leaf(void* self, std::uint32_t leaf);
  void leaf_done(std::uint32_t leaf);
  Optimizer& opt_;
  Tape& tape_;
  std::unordered_map<const void*, std::size_t> index_;  // parameter memory -> index
  std::vector<std::int32_t> leaves_left_;
  bool counted_ = false, active_ = false;
};

}  // namespace tapegrad::nn
