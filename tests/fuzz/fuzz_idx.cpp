// Fuzz target: the IDX reader (plain or gzip). The first byte splits the
// input into an images file and a labels file.
#include <tapegrad/nn.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t cut = std::min<std::size_t>(size - 1, data[0] * 4u);
  const std::string img = fuzz::temp_path("img"), lab = fuzz::temp_path("lab");
  fuzz::write_file(img, data + 1, cut);
  fuzz::write_file(lab, data + 1 + cut, size - 1 - cut);
  try {
    const auto d = tapegrad::nn::read_idx(img, lab);
    if (static_cast<std::int64_t>(d.x.size()) != d.n * d.features ||
        static_cast<std::int64_t>(d.y.size()) != d.n)
      __builtin_trap();  // a dataset that disagrees with itself is silent garbage
  } catch (const tapegrad::Error&) {
  }
  std::remove(img.c_str());
  std::remove(lab.c_str());
  return 0;
}
