#pragma once
// Checkpoints: every parameter and the optimiser state in one binary file,
// written atomically. Format (all integers little-endian), version 1:
//
//   bytes 0-7    magic "TAPEGRAD"
//   bytes 8-11   u32 format version (1)
//   bytes 12-15  u32 header size H
//   header (H bytes):
//     u32 entry count, then per entry:
//       u16 name length, name (UTF-8), u8 dtype (0 float32, 1 float64),
//       u8 rank, i64 dims[rank], u64 offset (from the start of the data),
//       u64 size in bytes
//     u32 metadata length, metadata ("key=value" lines)
//   data: the entries' raw little-endian values, back to back
//   last 4 bytes: u32 CRC-32 (zlib) of everything before it
//
// Saving writes "<path>.tmp-<pid>" in the same folder, flushes and fsyncs it,
// renames it over <path> and fsyncs the folder: a crash or kill at any moment
// leaves the old checkpoint or the new one, never a torn file. Loading checks
// magic, version, sizes, checksum and that every entry matches the model in
// name, dtype and shape before it changes anything.
#include <map>
#include <string>

#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"

namespace tapegrad::nn {

using CheckpointMeta = std::map<std::string, std::string>;

void save_checkpoint(const std::string& path, Module& model, Optimizer* opt,
                     const CheckpointMeta& meta = {});
// Restores the model (and the optimiser state and step count when opt is
// given) and returns the metadata. On any error, throws and changes nothing.
CheckpointMeta load_checkpoint(const std::string& path, Module& model, Optimizer* opt);

}  // namespace tapegrad::nn
