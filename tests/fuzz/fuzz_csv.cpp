// Fuzz target: the CSV reader, with the label chosen by name and by index.
#include <tapegrad/nn.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::temp_path("csv");
  fuzz::write_file(path, data, size);
  for (const char* label : {"label", "0", "2"}) {
    try {
      const auto d = tapegrad::nn::read_csv(path, label);
      if (static_cast<std::int64_t>(d.x.size()) != d.n * d.features) __builtin_trap();
    } catch (const tapegrad::Error&) {
    }
  }
  std::remove(path.c_str());
  return 0;
}
