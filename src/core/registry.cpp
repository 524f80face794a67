#include "tapegrad/registry.hpp"

namespace tapegrad {

namespace {
std::vector<OpCheckCase>& cases() {
  static std::vector<OpCheckCase> all;  // function-local: safe from init-order issues
  return all;
}
}  // namespace

void register_op_check(OpCheckCase c) { cases().push_back(std::move(c)); }
const std::vector<OpCheckCase>& op_check_cases() { return cases(); }

}  // namespace tapegrad
