#include "tapegrad/nn/checkpoint.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace tapegrad::nn {
namespace {

constexpr char kMagic[8] = {'T', 'A', 'P', 'E', 'G', 'R', 'A', 'D'};
constexpr std::uint32_t kVersion = 1;

// One tensor of the file. Files hold every parameter (and its optimiser
// state) in its declared order, whatever order memory keeps it in
// (Parameter::stored_transposed), so a checkpoint loads into either layout.
struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  void* data;  // in memory order
  std::size_t bytes;
  const Parameter* param;
};

std::vector<Entry> entries_of(Module& model, Optimizer* opt) {
  std::vector<Entry> out;
  for (auto& [name, p] : model.named_parameters())
    out.push_back({name, p->dtype(), p->shape(), p->raw_value(), p->bytes(), p});
  if (opt)
    for (auto& s : opt->state())
      out.push_back({"optimizer." + s.name, s.param->dtype(), s.param->shape(), s.data,
                     s.param->bytes(), s.param});
  return out;
}

template <class T>
void put(std::string& s, T v) {
  static_assert(std::endian::native == std::endian::little,
                "checkpoints assume a little-endian host");
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

std::string meta_text(const CheckpointMeta& meta) {
  std::string s;
  for (const auto& [k, v] : meta) {
    if (k.find_first_of("=\n") != std::string::npos || v.find('\n') != std::string::npos)
      throw Error(
          fmt::format("checkpoint: metadata key '{}' or its value contains '=' or a newline", k));
    s += k + "=" + v + "\n";
  }
  return s;
}

void write_all(int fd, const void* p, std::size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    const ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    }
    c += w, n -= static_cast<std::size_t>(w);
  }
}

// Reads fixed-size values from a byte range, failing with the file's name.
struct Reader {
  const std::string& path;
  const unsigned char* p;
  const unsigned char* end;
  template <class T>
  T get(const char* what) {
    if (static_cast<std::size_t>(end - p) < sizeof(T))
      throw Error(fmt::format("{}: corrupt header: it ends inside {}", path, what));
    T v;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  std::string bytes(std::size_t n, const char* what) {
    if (static_cast<std::size_t>(end - p) < n)
      throw Error(fmt::format("{}: corrupt header: it ends inside {}", path, what));
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

}  // namespace

void save_checkpoint(const std::string& path, Module& model, Optimizer* opt,
                     const CheckpointMeta& meta) {
  auto entries = entries_of(model, opt);
  std::vector<std::vector<char>> declared;  // copies of the entries stored transposed
  for (Entry& e : entries)
    if (e.param->stored_transposed()) {
      e.param->stored_to_declared(e.data, declared.emplace_back(e.bytes).data());
      e.data = declared.back().data();
    }
  CheckpointMeta m = meta;
  if (opt) m["optimizer.kind"] = opt->kind(), m["optimizer.steps"] = std::to_string(opt->steps());
  std::string header;
  put<std::uint32_t>(header, static_cast<std::uint32_t>(entries.size()));
  std::uint64_t offset = 0;
  for (const Entry& e : entries) {
    put<std::uint16_t>(header, static_cast<std::uint16_t>(e.name.size()));
    header += e.name;
    put<std::uint8_t>(header, e.dtype == DType::f32 ? 0 : 1);
    put<std::uint8_t>(header, static_cast<std::uint8_t>(e.shape.rank()));
    for (std::int64_t d : e.shape.dims()) put<std::int64_t>(header, d);
    put<std::uint64_t>(header, offset);
    put<std::uint64_t>(header, e.bytes);
    offset += e.bytes;
  }
  const std::string mt = meta_text(m);
  put<std::uint32_t>(header, static_cast<std::uint32_t>(mt.size()));
  header += mt;
  std::string head(kMagic, 8);
  put<std::uint32_t>(head, kVersion);
  put<std::uint32_t>(head, static_cast<std::uint32_t>(header.size()));
  head += header;

  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(head.data()), static_cast<uInt>(head.size()));
  for (const Entry& e : entries) crc = crc32_z(crc, static_cast<const Bytef*>(e.data), e.bytes);
  const auto crc32v = static_cast<std::uint32_t>(crc);

  const std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  try {
    write_all(fd, head.data(), head.size(), tmp);
    for (const Entry& e : entries) write_all(fd, e.data, e.bytes, tmp);
    write_all(fd, &crc32v, 4, tmp);
    if (::fsync(fd) != 0)
      throw Error(fmt::format("{}: fsync failed: {}", tmp, std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(fmt::format("{}: close failed: {}", tmp, std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(fmt::format("{}: cannot rename the new checkpoint into place: {}", path,
                            std::strerror(err)));
  }
  // Make the rename itself durable.
  const auto slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

CheckpointMeta load_checkpoint(const std::string& path, Module& model, Optimizer* opt) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open checkpoint", path));
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* base = reinterpret_cast<const unsigned char*>(file.data());
  if (file.size() < 20 || std::memcmp(file.data(), kMagic, 8) != 0)
    throw Error(
        fmt::format("{}: not a tapegrad checkpoint (wrong magic or shorter than 20 bytes)", path));
  Reader r{path, base + 8, base + file.size() - 4};
  const auto version = r.get<std::uint32_t>("the version");
  if (version != kVersion)
    throw Error(fmt::format(
        "{}: checkpoint format version {} is not supported (this build reads version {})", path,
        version, kVersion));
  const auto hsize = r.get<std::uint32_t>("the header size");
  if (hsize > file.size() - 20)
    throw Error(fmt::format("{}: truncated: the header claims {} bytes, the file has {}", path,
                            hsize, file.size()));
  std::uint32_t stored;
  std::memcpy(&stored, base + file.size() - 4, 4);
  const auto crc = static_cast<std::uint32_t>(crc32_z(crc32(0L, Z_NULL, 0), base, file.size() - 4));
  Reader h{path, r.p, r.p + hsize};
  const unsigned char* data = r.p + hsize;
  const auto data_bytes = static_cast<std::uint64_t>(base + file.size() - 4 - data);

  struct Found {
    DType dtype;
    Shape shape;
    std::uint64_t offset, bytes;
  };
  std::map<std::string, Found> found;
  const auto count = h.get<std::uint32_t>("the entry count");
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto len = h.get<std::uint16_t>("an entry name length");
    std::string name = h.bytes(len, "an entry name");
    const auto dt = h.get<std::uint8_t>("a dtype");
    const auto rank = h.get<std::uint8_t>("a rank");
    if (dt > 1)
      throw Error(fmt::format("{}: entry '{}' has unknown dtype code {}", path, name, dt));
    if (rank > kMaxRank)
      throw Error(fmt::format("{}: entry '{}' has rank {} (limit {})", path, name, rank, kMaxRank));
    std::vector<std::int64_t> dims;
    for (int k = 0; k < rank; ++k) dims.push_back(h.get<std::int64_t>("a dimension"));
    const Shape shape(dims);
    const auto off = h.get<std::uint64_t>("an offset");
    const auto bytes = h.get<std::uint64_t>("a size");
    const DType dtype = dt == 0 ? DType::f32 : DType::f64;
    if (bytes != static_cast<std::uint64_t>(shape.numel()) * dtype_size(dtype) ||
        off > data_bytes || bytes > data_bytes - off)
      throw Error(fmt::format(
          "{}: truncated or corrupt: entry '{}' ({} {}) does not fit in the {} data bytes", path,
          name, dtype_name(dtype), shape.str(), data_bytes));
    found[name] = {dtype, shape, off, bytes};
  }
  const auto mlen = h.get<std::uint32_t>("the metadata length");
  const std::string mt = h.bytes(mlen, "the metadata");
  if (crc != stored)
    throw Error(fmt::format("{}: corrupted: checksum mismatch (stored {:08x}, computed {:08x})",
                            path, stored, crc));

  // Every expected entry must be present and match before anything changes.
  const auto entries = entries_of(model, opt);
  for (const Entry& e : entries) {
    const auto it = found.find(e.name);
    if (it == found.end())
      throw Error(fmt::format(
          "{}: has no entry '{}' ({} {}): the checkpoint was saved from another model{}", path,
          e.name, dtype_name(e.dtype), e.shape.str(),
          e.name.rfind("optimizer.", 0) == 0 ? " or optimizer" : ""));
    if (!(it->second.shape == e.shape) || it->second.dtype != e.dtype)
      throw Error(fmt::format("{}: entry '{}' is {} {}, the model expects {} {}", path, e.name,
                              dtype_name(it->second.dtype), it->second.shape.str(),
                              dtype_name(e.dtype), e.shape.str()));
  }
  if (!opt) {
    for (const auto& kv : found) {
      const std::string& name = kv.first;
      const bool known = std::any_of(entries.begin(), entries.end(),
                                     [&](const Entry& e) { return e.name == name; });
      if (name.rfind("optimizer.", 0) != 0 && !known)
        throw Error(fmt::format("{}: entry '{}' has no counterpart in the model", path, name));
    }
  } else if (found.size() != entries.size()) {
    throw Error(fmt::format("{}: holds {} entries, the model and optimizer expect {}", path,
                            found.size(), entries.size()));
  }
  CheckpointMeta meta;
  std::size_t pos = 0;
  while (pos < mt.size()) {
    const auto nl = mt.find('\n', pos);
    const std::string line = mt.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    const auto eq = line.find('=');
    if (eq != std::string::npos) meta[line.substr(0, eq)] = line.substr(eq + 1);
    pos = nl == std::string::npos ? mt.size() : nl + 1;
  }
  if (opt) {
    const auto k = meta.find("optimizer.kind");
    if (k == meta.end() || k->second != opt->kind())
      throw Error(fmt::format("{}: optimizer state is for '{}', the run uses '{}'", path,
                              k == meta.end() ? "none" : k->second, opt->kind()));
  }
  for (const Entry& e : entries) e.param->declared_to_stored(data + found[e.name].offset, e.data);
  if (opt && meta.count("optimizer.steps")) opt->set_steps(std::stoll(meta["optimizer.steps"]));
  return meta;
}

}  // namespace tapegrad::nn
