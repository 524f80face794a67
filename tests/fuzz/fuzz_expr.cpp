// Fuzz target: the expression parser of `tapegrad grad`. Any input must give
// a value (and gradients) or a tapegrad::Error; nothing else.
#include <tapegrad/tapegrad.hpp>

#include "../../tools/tapegrad/expr.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace tg = tapegrad;
  tg::Tape tape;
  tg::TapeScope scope(tape);
  tapegrad::cli::Leaves vars{{"x", tg::var(0.5)}, {"y", tg::var(-2)}, {"z", tg::var(3)}};
  try {
    tg::Scalar f = tapegrad::cli::parse_expression(
        std::string(reinterpret_cast<const char*>(data), size), vars);
    f.backward();
  } catch (const tg::Error&) {
  }
  return 0;
}
