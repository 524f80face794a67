#include "expr.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace tapegrad::cli {
namespace {

// An operand: a recorded Scalar, or a plain number not on the tape. Numbers
// fold with numbers and ride on the node of the op that takes them, as in
// C++ code (x * 2 is one node that shows the 2).
struct Val {
  Scalar s;
  double c = 0;
  bool num = false;
};
Val of(Scalar s) { return {s, 0, false}; }
Val number(double c) { return {Scalar{}, c, true}; }
template <class F>
Val apply(const Val& a, const Val& b, F f) {
  if (a.num && b.num) return number(f(a.c, b.c));
  if (a.num) return of(f(a.c, b.s));
  if (b.num) return of(f(a.s, b.c));
  return of(f(a.s, b.s));
}

// The functions of the language: every function of the op table
// (op_table.hpp) by its C++ name, and fmin/fmax. A function of numbers is a
// number, computed now by the same rule.
struct Function {
  const char* name;
  std::size_t arity;
  Val (*call)(const Val* args);
};
template <ScalarOp O>
Val call_table(const Val* a) {
  if constexpr (scalar_op_binary(O)) {
    if (a[0].num && a[1].num) return number(detail::first2<O>(a[0].c, a[1].c).v);
    if (a[0].num) return of(detail::binary_op<O>(a[0].c, a[1].s, Site{}));
    if (a[1].num) return of(detail::binary_op<O>(a[0].s, a[1].c, Site{}));
    return of(detail::binary_op<O>(a[0].s, a[1].s, Site{}));
  } else {
    return a[0].num ? number(detail::first1<O>(a[0].c).v)
                    : of(detail::unary_op<O>(a[0].s, Site{}));
  }
}
#define TAPEGRAD_X(name, kind) TAPEGRAD_CLI_##kind(name)
#define TAPEGRAD_CLI_structural(name)
#define TAPEGRAD_CLI_unary_op(name)
#define TAPEGRAD_CLI_binary_op(name)
#define TAPEGRAD_CLI_unary_fn(name) {#name, 1, call_table<ScalarOp::name>},
#define TAPEGRAD_CLI_binary_fn(name) {#name, 2, call_table<ScalarOp::name>},
const Function kFunctions[] = {
    TAPEGRAD_SCALAR_OPS(TAPEGRAD_X)  //
    {"fmax", 2, call_table<ScalarOp::max>},
    {"fmin", 2, call_table<ScalarOp::min>},
};
#undef TAPEGRAD_X
#undef TAPEGRAD_CLI_structural
#undef TAPEGRAD_CLI_unary_op
#undef TAPEGRAD_CLI_binary_op
#undef TAPEGRAD_CLI_unary_fn
#undef TAPEGRAD_CLI_binary_fn

class Parser {
 public:
  Parser(const std::string& s, const Leaves& vars, Spans* spans)
      : s_(s), vars_(vars), spans_(spans) {}

  Scalar parse() {
    if (s_.size() > kMaxExpressionLength)
      throw Error(fmt::format("expression of {} characters is longer than the limit of {}",
                              s_.size(), kMaxExpressionLength));
    skip();
    if (pos_ == s_.size()) fail("empty expression");
    const Val v = expr();
    skip();
    if (pos_ != s_.size()) fail(fmt::format("unexpected '{}'", s_[pos_]));
    return v.num ? current_tape().constant(v.c) : v.s;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("1:{}: {}", pos_ + 1, what));
  }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  std::size_t start() {
    skip();
    return pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) return ++pos_, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(fmt::format("expected '{}'", c));
  }
  // Nesting guard: recursion depth is bounded, so deep inputs fail cleanly.
  struct Depth {
    Parser& p;
    explicit Depth(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxNesting)
        p.fail(fmt::format("nesting deeper than {} levels", kMaxNesting));
    }
    ~Depth() { --p.depth_; }
  };

  // Runs one operation of the subexpression s_[from, pos_): a NaN or an
  // infinity it makes is an error at that subexpression's column, naming
  // it (anomaly detection reports the node; this names the text); the node
  // is remembered with its span for errors of the backward sweep.
  template <class F>
  Val made(std::size_t from, F f) {
    Span span{from + 1, s_.substr(from, pos_ - from)};
    while (!span.text.empty() && std::isspace(static_cast<unsigned char>(span.text.back())))
      span.text.pop_back();
    Val v;
    try {
      v = f();
    } catch (const AnomalyError& e) {
      throw Error(fmt::format("1:{}: {}: {}", span.column, span.text, e.problem()));
    }
    if (v.num && !std::isfinite(v.c))
      throw Error(fmt::format("1:{}: {} is {}", span.column, span.text,
                              std::isnan(v.c) ? "NaN" : "infinite"));
    if (!v.num && spans_) spans_->emplace(v.s.index(), std::move(span));
    return v;
  }

  Val expr() {
    Depth d(*this);
    const std::size_t from = start();
    Val v = term();
    for (;;) {
      if (eat('+')) {
        const Val r = term();
        v = made(from, [&] { return apply(v, r, [](const auto& x, const auto& y) { return x + y; }); });
      } else if (eat('-')) {
        const Val r = term();
        v = made(from, [&] { return apply(v, r, [](const auto& x, const auto& y) { return x - y; }); });
      } else {
        return v;
      }
    }
  }
  Val term() {
    const std::size_t from = start();
    Val v = unary();
    for (;;) {
      if (eat('*')) {
        const Val r = unary();
        v = made(from, [&] { return apply(v, r, [](const auto& x, const auto& y) { return x * y; }); });
      } else if (eat('/')) {
        const Val r = unary();
        v = made(from, [&] { return apply(v, r, [](const auto& x, const auto& y) { return x / y; }); });
      } else {
        return v;
      }
    }
  }
  Val unary() {
    Depth d(*this);
    const std::size_t from = start();
    if (eat('-')) {
      const Val v = unary();
      return made(from, [&] { return v.num ? number(-v.c) : of(-v.s); });
    }
    if (eat('+')) return unary();
    Val base = primary();
    if (eat('^')) {  // right-associative: 2^3^2 = 2^9
      const Val e = unary();
      return made(from, [&] {
        return apply(base, e, [](const auto& x, const auto& y) {
          using std::pow;
          return pow(x, y);
        });
      });
    }
    return base;
  }
  Val primary() {
    skip();
    if (pos_ >= s_.size()) fail("expected a number, a variable or '('");
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      Val v = expr();
      expect(')');
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      const char* start = s_.c_str() + pos_;
      char* end = nullptr;
      const double v = std::strtod(start, &end);
      if (end == start) fail("malformed number");
      pos_ += static_cast<std::size_t>(end - start);
      return number(v);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t at = pos_;
      std::string name;
      while (pos_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        name += s_[pos_++];
      if (eat('(')) return call(name, at);
      const auto it = vars_.find(name);
      if (it == vars_.end()) {
        pos_ = at;
        fail(fmt::format("unknown variable '{}' (give its value with --at {}=...)", name, name));
      }
      return of(it->second);
    }
    fail(fmt::format("unexpected '{}'", c));
  }
  Val call(const std::string& f, std::size_t at) {
    const Function* fn = nullptr;
    for (const Function& k : kFunctions)
      if (f == k.name) fn = &k;
    if (!fn) {
      pos_ = at;
      fail(fmt::format("unknown function '{}' (known: {})", f, function_names()));
    }
    std::vector<Val> args{expr()};
    while (eat(',')) args.push_back(expr());
    expect(')');
    if (args.size() != fn->arity) {
      pos_ = at;
      fail(fmt::format("{}() takes {} argument{}, got {}", f, fn->arity, fn->arity == 1 ? "" : "s",
                       args.size()));
    }
    return made(at, [&] { return fn->call(args.data()); });
  }

  const std::string& s_;
  const Leaves& vars_;
  Spans* spans_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string function_names() {
  std::string out;
  for (const Function& f : kFunctions) {
    if (!out.empty()) out += ' ';
    out += f.name;
  }
  return out;
}

std::vector<std::pair<std::string, double>> parse_bindings(const std::string& text) {
  std::vector<std::pair<std::string, double>> out;
  std::string item;
  const auto flush = [&] {
    if (item.empty()) return;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(fmt::format("--at: '{}' is not of the form name=value", item));
    const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0')
      throw Error(fmt::format("--at: '{}' is not a number (in '{}')", value, item));
    for (const auto& [n, _] : out)
      if (n == name) throw Error(fmt::format("--at: variable '{}' is given twice", name));
    out.emplace_back(name, v);
    item.clear();
  };
  for (char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c)))
      flush();
    else
      item += c;
  }
  flush();
  return out;
}

Scalar parse_expression(const std::string& text, const Leaves& vars, Spans* spans) {
  return Parser(text, vars, spans).parse();
}

void rethrow_in_expression(const AnomalyError& e, const Spans& spans) {
  if (!e.tensor())
    if (const auto it = spans.find(e.node()); it != spans.end())
      throw Error(fmt::format("1:{}: {}: {}", it->second.column, it->second.text, e.problem()));
  throw e;
}

}  // namespace tapegrad::cli
