#pragma once
// Optimisers update parameters from their gradients; backward computes them.
#include <string>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Parameter*> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  virtual const char* kind() const = 0;
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
  // Allocates `count` zeroed state buffers per parameter, named by suffix.
  void init_state(std::vector<std::string> suffixes);
  std::vector<Parameter*> params_;
  std::vector<std::string> suffixes_;
  std::vector<std::vector<Buffer>> bufs_;  // [param][suffix]
  double lr_;
  std::int64_t steps_ = 0;
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
  void step() override;
  const char* kind() const override { return "sgd"; }

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
  void step() override;
  const char* kind() const override { return "adam"; }

 private:
  AdamOptions opt_;
};

}  // namespace tapegrad::nn
