// Sparsity patterns of a VectorFunction, colorings, and the compressed
// evaluation of sparse Jacobians and Hessians (sparse.hpp).
#include "tapegrad/sparse.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "core/rules.hpp"
#include "core/vprogram.hpp"

namespace tapegrad {

using Set = std::vector<std::uint32_t>;

bool SparsityPattern::contains(std::uint32_t r, std::uint32_t c) const {
  if (r >= rows) return false;
  const auto b = col.begin() + row_start[r], e = col.begin() + row_start[r + 1];
  return std::binary_search(b, e, c);
}

SparsityPattern SparsityPattern::transposed() const {
  SparsityPattern t;
  t.rows = cols, t.cols = rows;
  t.row_start.assign(cols + 1, 0);
  for (std::uint32_t c : col) ++t.row_start[c + 1];
  std::partial_sum(t.row_start.begin(), t.row_start.end(), t.row_start.begin());
  t.col.resize(col.size());
  std::vector<std::uint32_t> at(t.row_start.begin(), t.row_start.end() - 1);
  for (std::uint32_t r = 0; r < rows; ++r)
    for (std::uint32_t k = row_start[r]; k < row_start[r + 1]; ++k) t.col[at[col[k]]++] = r;
  return t;
}

namespace {
// Cells of a picture: each covers a block of rows x cols when the pattern is
// larger than `most` in either direction.
std::vector<std::uint8_t> cells(const SparsityPattern& p, std::uint32_t most, std::uint32_t& h,
                                std::uint32_t& w) {
  const std::uint32_t br = std::max(1u, (p.rows + most - 1) / most);
  const std::uint32_t bc = std::max(1u, (p.cols + most - 1) / most);
  h = (p.rows + br - 1) / br, w = (p.cols + bc - 1) / bc;
  std::vector<std::uint8_t> on(std::size_t(h) * w, 0);
  for (std::uint32_t r = 0; r < p.rows; ++r)
    for (std::uint32_t k = p.row_start[r]; k < p.row_start[r + 1]; ++k)
      on[std::size_t(r / br) * w + p.col[k] / bc] = 1;
  return on;
}
}  // namespace

std::string SparsityPattern::to_text() const {
  std::uint32_t h = 0, w = 0;
  const std::vector<std::uint8_t> on = cells(*this, 120, h, w);
  std::string out;
  out.reserve(std::size_t(h) * (w + 1));
  for (std::uint32_t r = 0; r < h; ++r) {
    for (std::uint32_t c = 0; c < w; ++c) out += on[std::size_t(r) * w + c] ? '#' : '.';
    out += '\n';
  }
  return out;
}

std::string SparsityPattern::to_svg() const {
  std::uint32_t h = 0, w = 0;
  const std::vector<std::uint8_t> on = cells(*this, 400, h, w);
  const int cell = static_cast<int>(std::clamp(400u / std::max(h, w), 2u, 24u));
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} "
      "{}\">\n<title>{} x {} pattern, {} nonzeros</title>\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\" stroke=\"#888\"/>\n",
      w * cell, h * cell, w * cell, h * cell, rows, cols, nnz());
  for (std::uint32_t r = 0; r < h; ++r)
    for (std::uint32_t c = 0; c < w; ++c)
      if (on[std::size_t(r) * w + c])
        out +=
            fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#1f4e8c\"/>\n",
                        c * cell, r * cell, cell, cell);
  return out + "</svg>\n";
}

namespace {
void normalize(Set& s) {
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
}

// Runs the index-set sweep over P: on_op(k, A, B) sees each op's operand
// sets before its own set (their union) is formed. Sets may hold an index
// more than once and out of order until normalize() (on_op normalizes what
// it reads): an operand used for the last time is moved into its result
// and the other appended, so a running sum over n terms costs O(n log n),
// not O(n^2); a set is normalized whenever it has doubled since it last
// was. Sets are freed after their last use unless they belong to an
// output. Returns the outputs' sets, normalized.
template <class OnOp>
std::vector<Set> index_sets(const detail::VProgram& P, OnOp on_op) {
  const std::uint32_t S = P.slots();
  std::vector<Set> set(S);
  std::vector<std::uint32_t> clean(S, 0);  // size when last normalized
  for (std::uint32_t j = 0; j < P.n; ++j) set[1 + j] = {j};
  std::vector<std::uint32_t> last(S, 0);
  std::vector<std::uint8_t> keep(S, 0);
  for (std::uint32_t k = 0; k < P.ops.size(); ++k) last[P.ops[k].a] = last[P.ops[k].b] = k;
  for (std::uint32_t s : P.out) keep[s] = 1;
  for (std::uint32_t k = 0; k < P.ops.size(); ++k) {
    const detail::VInstr& o = P.ops[k];
    const std::uint32_t s = P.first_op + k;
    on_op(k, set[o.a], set[o.b]);
    const auto dead = [&](std::uint32_t in) { return last[in] == k && !keep[in]; };
    // The larger operand is the base: moved when dead, else copied.
    std::uint32_t base = o.a, other = o.b;
    if (set[o.b].size() > set[o.a].size()) std::swap(base, other);
    Set out = (dead(base) && base != other) ? std::move(set[base]) : set[base];
    if (other != base) out.insert(out.end(), set[other].begin(), set[other].end());
    if (out.size() > 2 * clean[base] + 16) normalize(out);
    clean[s] = static_cast<std::uint32_t>(out.size());
    set[s] = std::move(out);
    for (std::uint32_t in : {o.a, o.b})
      if (dead(in)) Set().swap(set[in]);
  }
  std::vector<Set> out;
  out.reserve(P.out.size());
  for (std::uint32_t s : P.out) {
    out.push_back(set[s]);
    normalize(out.back());
  }
  return out;
}

SparsityPattern from_rows(std::vector<Set>& rows, std::uint32_t cols) {
  SparsityPattern p;
  p.rows = static_cast<std::uint32_t>(rows.size()), p.cols = cols;
  p.row_start.assign(1, 0);
  for (Set& r : rows) {
    p.col.insert(p.col.end(), r.begin(), r.end());
    p.row_start.push_back(static_cast<std::uint32_t>(p.col.size()));
  }
  return p;
}
}  // namespace

SparsityPattern jacobian_pattern(const VectorFunction& f) {
  std::vector<Set> rows = index_sets(f.program(), [](std::uint32_t, Set&, Set&) {});
  return from_rows(rows, static_cast<std::uint32_t>(f.inputs()));
}

SparsityPattern hessian_pattern(const VectorFunction& f) {
  const detail::VProgram& P = f.program();
  // nl[i]: the inputs that meet input i in a nonlinear op; compacted now
  // and then so that repeated interactions do not pile up.
  std::vector<Set> nl(P.n);
  std::vector<std::uint32_t> compact_at(P.n, 64);
  const auto add = [&](const Set& from, const Set& to) {
    for (std::uint32_t i : from) {
      Set& s = nl[i];
      s.insert(s.end(), to.begin(), to.end());
      if (s.size() > compact_at[i]) {
        std::sort(s.begin(), s.end());
        s.erase(std::unique(s.begin(), s.end()), s.end());
        compact_at[i] = std::max<std::uint32_t>(64, 2 * static_cast<std::uint32_t>(s.size()));
      }
    }
  };
  Set both;
  index_sets(P, [&](std::uint32_t k, Set& A, Set& B) {
    const detail::VInstr& o = P.ops[k];
    const bool curved = o.op == ScalarOp::custom || detail::curved(o.op);
    if (!curved || (A.empty() && B.empty())) return;
    normalize(A), normalize(B);
    if (o.op == ScalarOp::custom) {
      add(A, A);
      return;
    }
    if (o.op == ScalarOp::mul) {  // a b: only the cross term
      add(A, B), add(B, A);
      return;
    }
    if (o.op == ScalarOp::div) {  // a / b: linear in a
      if (B.empty()) return;
      add(A, B), add(B, A), add(B, B);
      return;
    }
    both.clear();
    std::set_union(A.begin(), A.end(), B.begin(), B.end(), std::back_inserter(both));
    add(both, both);
  });
  for (Set& s : nl) {
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
  }
  return from_rows(nl, P.n);
}

// ---- colorings ----

namespace {
std::vector<std::uint32_t> largest_first(const SparsityPattern& p) {
  std::vector<std::uint32_t> order(p.rows);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return p.row_start[a + 1] - p.row_start[a] > p.row_start[b + 1] - p.row_start[b];
  });
  return order;
}
std::uint32_t smallest_free(std::vector<std::uint32_t>& forbid, std::uint32_t mark) {
  std::uint32_t c = 0;
  while (c < forbid.size() && forbid[c] == mark) ++c;
  if (c == forbid.size()) forbid.push_back(0);
  return c;
}
}  // namespace

Coloring color_columns(const SparsityPattern& p) {
  const SparsityPattern t = p.transposed();  // column -> rows
  Coloring out;
  out.color.assign(p.cols, kNone);
  std::vector<std::uint32_t> forbid;
  for (std::uint32_t j : largest_first(t)) {
    const std::uint32_t mark = j + 1;
    for (std::uint32_t k = t.row_start[j]; k < t.row_start[j + 1]; ++k) {
      const std::uint32_t r = t.col[k];
      for (std::uint32_t q = p.row_start[r]; q < p.row_start[r + 1]; ++q)
        if (const std::uint32_t c = out.color[p.col[q]]; c != kNone) forbid[c] = mark;
    }
    const std::uint32_t c = smallest_free(forbid, mark);
    out.color[j] = c;
    out.count = std::max(out.count, c + 1);
  }
  return out;
}

namespace {
// Small (color, count) lists: a vertex's colored neighbours by color.
using Counts = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
std::uint32_t count_of(const Counts& cs, std::uint32_t c) {
  for (const auto& [k, n] : cs)
    if (k == c) return n;
  return 0;
}
std::uint32_t bump(Counts& cs, std::uint32_t c) {
  for (auto& [k, n] : cs)
    if (k == c) return ++n;
  cs.push_back({c, 1});
  return 1;
}
void add_color(std::vector<std::uint32_t>& s, std::uint32_t c) {
  if (std::find(s.begin(), s.end(), c) == s.end()) s.push_back(c);
}
}  // namespace

// Greedy star coloring. A vertex v, colored last of a path on four
// vertices, would make the path two-colored in one of two ways: v-w-x-y
// with v, x alike and w, y alike, or y-v-w-x with the same pairs. Two
// summaries make both checks cheap: cnt[u], the colors among u's colored
// neighbours with their counts, and via[w], the colors of those neighbours
// x of w that have another neighbour of w's color. v may not take w's
// color, any color in via[w] (first shape), nor, when v already has two
// neighbours of w's color, any color among w's neighbours (second shape).
// The summaries are kept up to date as vertices are colored, each update
// touching a vertex's neighbours once per color, so a hub (an arrowhead's
// dense row) costs its degree a few times, not once per other vertex.
Coloring star_coloring(const SparsityPattern& p) {
  const std::uint32_t n = p.rows;
  Coloring out;
  out.color.assign(n, kNone);
  std::vector<Counts> cnt(n);
  std::vector<std::vector<std::uint32_t>> via(n);
  std::vector<std::uint32_t> forbid;
  const auto nbrs = [&](std::uint32_t v) {
    return std::span<const std::uint32_t>(p.col.data() + p.row_start[v],
                                          p.row_start[v + 1] - p.row_start[v]);
  };
  for (std::uint32_t v : largest_first(p)) {
    const std::uint32_t mark = v + 1;
    for (std::uint32_t w : nbrs(v)) {
      const std::uint32_t a = out.color[w];
      if (w == v || a == kNone) continue;
      if (forbid.size() <= a) forbid.resize(a + 1, 0);
      forbid[a] = mark;
      for (std::uint32_t c : via[w]) forbid[c] = mark;
      if (count_of(cnt[v], a) >= 2)
        for (const auto& [c, k] : cnt[w]) forbid[c] = mark;
    }
    const std::uint32_t c = smallest_free(forbid, mark);
    out.color[v] = c;
    out.count = std::max(out.count, c + 1);
    for (std::uint32_t x : nbrs(v)) {
      if (x == v) continue;
      const std::uint32_t now = bump(cnt[x], c);
      const std::uint32_t cx = out.color[x];
      if (cx == kNone || now < 2) continue;
      add_color(via[v], cx);  // x has another neighbour colored c
      if (now == 2)           // and so the first one gets x's color too
        for (std::uint32_t w : nbrs(x))
          if (w != v && w != x && out.color[w] == c) add_color(via[w], cx);
    }
    // v is x for its neighbours w whose color v has twice among its own.
    for (std::uint32_t w : nbrs(v))
      if (w != v && out.color[w] != kNone && count_of(cnt[v], out.color[w]) >= 2)
        add_color(via[w], c);
  }
  return out;
}

bool recoverable(const SparsityPattern& p, const Coloring& c) {
  // seen[color] = how many of row r's columns have it (stamped by row).
  std::vector<std::uint32_t> times(c.count, 0), stamp(c.count, kNone);
  const auto unique_in_row = [&](std::uint32_t r, std::uint32_t col_color) {
    return stamp[col_color] == r && times[col_color] == 1;
  };
  const SparsityPattern& t = p;  // symmetric: row j holds column j's entries
  for (std::uint32_t r = 0; r < p.rows; ++r) {
    for (std::uint32_t k = p.row_start[r]; k < p.row_start[r + 1]; ++k) {
      const std::uint32_t cc = c.color[p.col[k]];
      if (stamp[cc] != r) stamp[cc] = r, times[cc] = 0;
      ++times[cc];
    }
    if (!p.contains(r, r)) {  // the diagonal is read from row r too
      const std::uint32_t cc = c.color[r];
      if (stamp[cc] != r) stamp[cc] = r, times[cc] = 0;
    }
    for (std::uint32_t k = p.row_start[r]; k < p.row_start[r + 1]; ++k) {
      const std::uint32_t j = p.col[k];
      if (unique_in_row(r, c.color[j])) continue;
      // else (r, j) must be read from row j: r's color once among row j's
      std::uint32_t same = 0;
      for (std::uint32_t q = t.row_start[j]; q < t.row_start[j + 1]; ++q)
        same += c.color[t.col[q]] == c.color[r];
      if (same != 1) return false;
    }
  }
  return true;
}

// ---- compressed evaluation ----

SparseJacobian::SparseJacobian(const VectorFunction& f)
    : prog_(&f.program()), pattern_(jacobian_pattern(f)) {
  rows_.reserve(pattern_.nnz());
  for (std::uint32_t r = 0; r < pattern_.rows; ++r)
    rows_.insert(rows_.end(), pattern_.row_start[r + 1] - pattern_.row_start[r], r);
  // Columns need at least the longest row's length in colors, rows the
  // longest column's: color the side with the smaller bound first, and the
  // other only if it could do better.
  const SparsityPattern t = pattern_.transposed();
  std::uint32_t longest_row = 0, longest_col = 0;
  for (std::uint32_t r = 0; r < pattern_.rows; ++r)
    longest_row = std::max(longest_row, pattern_.row_start[r + 1] - pattern_.row_start[r]);
  for (std::uint32_t c = 0; c < t.rows; ++c)
    longest_col = std::max(longest_col, t.row_start[c + 1] - t.row_start[c]);
  by_rows_ = longest_col < longest_row;
  coloring_ = by_rows_ ? color_columns(t) : color_columns(pattern_);
  const std::uint32_t other_bound = by_rows_ ? longest_row : longest_col;
  if (other_bound < coloring_.count) {
    Coloring other = by_rows_ ? color_columns(pattern_) : color_columns(t);
    if (other.count < coloring_.count) coloring_ = std::move(other), by_rows_ = !by_rows_;
  }
}

void SparseJacobian::evaluate(std::span<const double> x, std::span<double> values,
                              std::span<double> y) const {
  const detail::VProgram& P = *prog_;
  if (x.size() != P.n || values.size() != nnz() || (!y.empty() && y.size() != P.out.size()))
    throw Error(fmt::format(
        "SparseJacobian::evaluate: sizes x {}, values {}, y {}; expected {}, {}, {} (or empty y)",
        x.size(), values.size(), y.size(), P.n, nnz(), P.out.size()));
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  const std::uint32_t K = std::max(1u, coloring_.count);
  const std::size_t S = P.slots();
  if (!by_rows_) {
    detail::zeroed(ws.t, S * K);
    for (std::uint32_t j = 0; j < P.n; ++j)
      if (coloring_.color[j] != kNone) ws.t[(1 + std::size_t(j)) * K + coloring_.color[j]] = 1.0;
    detail::tangents(P, K, ws);
    for (std::size_t k = 0; k < values.size(); ++k)
      values[k] = ws.t[std::size_t(P.out[rows_[k]]) * K + coloring_.color[pattern_.col[k]]];
  } else {
    detail::zeroed(ws.g, S * K);
    for (std::uint32_t r = 0; r < P.out.size(); ++r)
      ws.g[std::size_t(P.out[r]) * K + coloring_.color[r]] += 1.0;
    detail::adjoints(P, K, ws);
    for (std::size_t k = 0; k < values.size(); ++k)
      values[k] = ws.g[(1 + std::size_t(pattern_.col[k])) * K + coloring_.color[rows_[k]]];
  }
  for (std::size_t k = 0; k < y.size(); ++k) y[k] = ws.v[P.out[k]];
}

SparseHessian::SparseHessian(const VectorFunction& f)
    : prog_(&f.program()), full_(hessian_pattern(f)), coloring_(star_coloring(full_)) {
  if (!recoverable(full_, coloring_))  // a bug in star_coloring, never the user's
    throw Error("SparseHessian: internal error: the star coloring does not determine every entry");
  const std::uint32_t K = std::max(1u, coloring_.count);
  const auto& color = coloring_.color;
  std::vector<std::uint32_t> times(K, 0), stamp(K, kNone);
  for (std::uint32_t r = 0; r < full_.rows; ++r) {
    for (std::uint32_t k = full_.row_start[r]; k < full_.row_start[r + 1]; ++k) {
      const std::uint32_t cc = color[full_.col[k]];
      if (stamp[cc] != r) stamp[cc] = r, times[cc] = 0;
      ++times[cc];
    }
    for (std::uint32_t k = full_.row_start[r]; k < full_.row_start[r + 1]; ++k) {
      const std::uint32_t j = full_.col[k];
      if (j > r) break;
      rows_.push_back(r), cols_.push_back(j);
      if (stamp[color[j]] == r && times[color[j]] == 1)
        from_.push_back((1 + r) * K + color[j]);  // (H d_color(j)) at row r
      else
        from_.push_back((1 + j) * K + color[r]);  // (H d_color(r)) at row j
    }
  }
}

void SparseHessian::evaluate(std::span<const double> x, std::span<const double> w,
                             std::span<double> values, std::span<double> grad) const {
  const detail::VProgram& P = *prog_;
  if (x.size() != P.n || w.size() != P.out.size() || values.size() != nnz() ||
      (!grad.empty() && grad.size() != P.n))
    throw Error(fmt::format(
        "SparseHessian::evaluate: sizes x {}, w {}, values {}, grad {}; expected {}, {}, {}, {} "
        "(or empty grad)",
        x.size(), w.size(), values.size(), grad.size(), P.n, P.out.size(), nnz(), P.n));
  detail::Workspace& ws = detail::thread_workspace();
  detail::forward(P, x, ws);
  const std::uint32_t K = std::max(1u, coloring_.count);
  const std::size_t S = P.slots();
  detail::zeroed(ws.t, S * K);
  for (std::uint32_t j = 0; j < P.n; ++j) ws.t[(1 + std::size_t(j)) * K + coloring_.color[j]] = 1.0;
  detail::tangents(P, K, ws);
  detail::zeroed(ws.g, S);
  for (std::size_t r = 0; r < P.out.size(); ++r) ws.g[P.out[r]] += w[r];
  detail::zeroed(ws.h, S * K);
  detail::second_adjoints(P, K, ws);
  for (std::size_t k = 0; k < values.size(); ++k) values[k] = ws.h[from_[k]];
  if (!grad.empty()) std::copy_n(ws.g.begin() + 1, P.n, grad.begin());
}

}  // namespace tapegrad
