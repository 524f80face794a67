// Fuzz target: the checkpoint loader. A rejected file must leave the model
// and the optimiser exactly as they were.
#include <tapegrad/nn.hpp>

#include <cstring>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace nn = tapegrad::nn;
  static nn::MLP model({3, 4, 2}, {.seed = 1});
  static nn::Adam adam(model.parameters(), {});
  const std::string path = fuzz::temp_path("ckpt");
  fuzz::write_file(path, data, size);
  std::vector<std::vector<double>> before;
  for (auto* p : model.parameters()) before.push_back(p->values());
  try {
    nn::load_checkpoint(path, model, &adam);
    // Accepted (a valid checkpoint): restore the reference state.
    std::size_t i = 0;
    for (auto* p : model.parameters()) p->set_values(before[i++]);
  } catch (const tapegrad::Error&) {
    std::size_t i = 0;
    for (auto* p : model.parameters())
      if (p->values() != before[i++]) __builtin_trap();  // a failed load changed the model
  }
  std::remove(path.c_str());
  return 0;
}
