#pragma once
// Shared by the fuzz targets: a private temporary file per process.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace fuzz {

inline std::string temp_path(const char* tag) {
  return "/tmp/tapegrad-fuzz-" + std::to_string(::getpid()) + "-" + tag;
}

inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

}  // namespace fuzz
