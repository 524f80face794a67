// What a tape holds (Tape::memory), its peak, and the memory budget.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "tapegrad/tape.hpp"
#include "tapegrad/userfn.hpp"

namespace tapegrad {

std::string format_bytes(std::size_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (std::size_t{1} << 20)) return fmt::format("{:.1f} KiB", b / 1024);
  if (bytes < (std::size_t{1} << 30)) return fmt::format("{:.2f} MiB", b / (1 << 20));
  return fmt::format("{:.2f} GiB", b / (1 << 30));
}

std::string TapeMemory::str() const {
  std::string s = fmt::format(
      "tape memory: {} in use, {} held, peak {}{}\n"
      "  scalar nodes   {:>10}  {}\n"
      "  adjoints                   {}\n"
      "  tensor nodes   {:>10}  {}\n"
      "  spare capacity             {}\n"
      "  pool                       {}\n",
      format_bytes(in_use()), format_bytes(held()), format_bytes(peak_bytes),
      budget_bytes ? fmt::format(" (budget {})", format_bytes(budget_bytes)) : std::string(),
      scalar_nodes, format_bytes(scalar_bytes), format_bytes(adjoint_bytes), tensor_nodes,
      format_bytes(tensor_bytes), format_bytes(spare_bytes), format_bytes(pool_bytes));
  std::string ops;
  for (std::size_t i = 0; i < nodes_by_op.size() && i < 5; ++i)
    ops += fmt::format("{}{} {}", i ? ", " : "", nodes_by_op[i].first, nodes_by_op[i].second);
  if (!ops.empty()) s += "  nodes by op    " + ops + "\n";
  return s;
}

namespace detail {
std::size_t ScalarArrays::next_capacity() const {
  return std::min<std::size_t>(std::max<std::size_t>(1024, std::size_t{cap_} * 2),
                               std::size_t{Tape::kMaxScalarNodes});
}
}  // namespace detail

namespace {
constexpr std::size_t kScalarNodeBytes = sizeof(ScalarEdges) + sizeof(double);
}

std::size_t Tape::tensor_bytes_in_use() const {
  std::size_t b = 0;
  for (const TensorNode& n : tnodes_)
    b += n.value_buf.bytes() + n.grad_buf.bytes() + n.saved.bytes();
  return b;
}

std::size_t Tape::held_bytes() const {
  std::size_t b = std::size_t{scalars_.capacity()} * kScalarNodeBytes +
                  adj_.capacity() * sizeof(double) + tensor_bytes_in_use();
  for (const Buffer& p : pool_) b += p.bytes();
  return b;
}

void Tape::note_peak() const {
  const std::size_t used = std::size_t{scalars_.size()} * kScalarNodeBytes +
                           adj_.size() * sizeof(double) + tensor_bytes_in_use();
  peak_ = std::max(peak_, used);
}

void Tape::reset_peak() {
  peak_ = 0;
  note_peak();
}

TapeMemory Tape::memory() const {
  note_peak();
  TapeMemory m;
  m.scalar_nodes = scalars_.size();
  m.tensor_nodes = tnodes_.size();
  m.scalar_bytes = std::size_t{scalars_.size()} * kScalarNodeBytes;
  m.adjoint_bytes = adj_.size() * sizeof(double);
  m.tensor_bytes = tensor_bytes_in_use();
  m.spare_bytes = std::size_t{scalars_.capacity() - scalars_.size()} * kScalarNodeBytes +
                  (adj_.capacity() - adj_.size()) * sizeof(double);
  for (const Buffer& p : pool_) m.pool_bytes += p.bytes();
  m.peak_bytes = peak_;
  m.budget_bytes = budget_;
  std::map<std::string, std::size_t> count;
  std::vector<std::size_t> by_code(static_cast<std::size_t>(ScalarOp::count_));
  for (std::uint32_t i = 1; i < scalars_.size(); ++i)
    ++by_code[static_cast<std::size_t>(scalar_op(i))];
  for (std::size_t k = 0; k < by_code.size(); ++k)
    if (by_code[k]) count[scalar_op_name(static_cast<ScalarOp>(k))] += by_code[k];
  for (const TensorNode& n : tnodes_) ++count[n.op->name];
  m.nodes_by_op.assign(count.begin(), count.end());
  std::stable_sort(m.nodes_by_op.begin(), m.nodes_by_op.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return m;
}

std::string Tape::alloc_context() const {
  if (!alloc_op_) return "a scratch buffer";
  const std::string site = site_str(alloc_site_);
  return fmt::format("'{}'{}", alloc_op_, site.empty() ? "" : " at " + site);
}

void Tape::charge(std::size_t bytes, const std::string& what) const {
  if (!budget_) return;
  const std::size_t held = held_bytes();
  if (held + bytes <= budget_) return;
  note_peak();
  throw Error(fmt::format(
      "tape memory budget exceeded: {} asks for {} more; the tape holds {} ({} in use) of its "
      "budget of {}. Clear or rewind the tape between steps, record less per step "
      "(checkpointing), or raise the budget (Tape::set_memory_budget); the tape is unchanged",
      what, format_bytes(bytes), format_bytes(held),
      format_bytes(std::size_t{scalars_.size()} * kScalarNodeBytes + adj_.size() * sizeof(double) +
                   tensor_bytes_in_use()),
      format_bytes(budget_)));
}

}  // namespace tapegrad
