#include "expr.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace tapegrad::cli {
namespace {

class Parser {
 public:
  Parser(const std::string& s, const Leaves& vars) : s_(s), vars_(vars) {}

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

  // An operand: a recorded Scalar, or a plain number not on the tape. Numbers
  // fold with numbers and ride on the node of the op that takes them, as in
  // C++ code (x * 2 is one node that shows the 2).
  struct Val {
    Scalar s;
    double c = 0;
    bool num = false;
  };
  static Val of(Scalar s) { return {s, 0, false}; }
  static Val number(double c) { return {Scalar{}, c, true}; }
  template <class F>
  static Val apply(const Val& a, const Val& b, F f) {
    if (a.num && b.num) return number(f(a.c, b.c));
    if (a.num) return of(f(a.c, b.s));
    if (b.num) return of(f(a.s, b.c));
    return of(f(a.s, b.s));
  }

  Val expr() {
    Depth d(*this);
    Val v = term();
    for (;;) {
      if (eat('+'))
        v = apply(v, term(), [](const auto& x, const auto& y) { return x + y; });
      else if (eat('-'))
        v = apply(v, term(), [](const auto& x, const auto& y) { return x - y; });
      else
        return v;
    }
  }
  Val term() {
    Val v = unary();
    for (;;) {
      if (eat('*'))
        v = apply(v, unary(), [](const auto& x, const auto& y) { return x * y; });
      else if (eat('/'))
        v = apply(v, unary(), [](const auto& x, const auto& y) { return x / y; });
      else
        return v;
    }
  }
  Val unary() {
    Depth d(*this);
    if (eat('-')) {
      const Val v = unary();
      return v.num ? number(-v.c) : of(-v.s);
    }
    if (eat('+')) return unary();
    Val base = primary();
    if (eat('^'))  // right-associative: 2^3^2 = 2^9
      return apply(base, unary(), [](const auto& x, const auto& y) {
        using std::pow;
        return pow(x, y);
      });
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
    std::vector<Val> args{expr()};
    while (eat(',')) args.push_back(expr());
    expect(')');
    const auto arity = [&](std::size_t n) {
      if (args.size() != n) {
        pos_ = at;
        fail(fmt::format("{}() takes {} argument{}, got {}", f, n, n == 1 ? "" : "s", args.size()));
      }
    };
    if (f == "max" || f == "min" || f == "pow") {
      arity(2);
      if (f == "max")
        return apply(args[0], args[1], [](const auto& x, const auto& y) {
          using std::max;
          return max(x, y);
        });
      if (f == "min")
        return apply(args[0], args[1], [](const auto& x, const auto& y) {
          using std::min;
          return min(x, y);
        });
      return apply(args[0], args[1], [](const auto& x, const auto& y) {
        using std::pow;
        return pow(x, y);
      });
    }
    arity(1);
    // A function of a number is a number: the same rule, evaluated now.
    const auto fn = [&](Scalar (*op)(const Scalar&, Site), detail::Partials (*rule)(double)) {
      return args[0].num ? number(rule(args[0].c).v) : of(op(args[0].s, Site::current()));
    };
    if (f == "exp") return fn(exp, detail::exp_rule);
    if (f == "log") return fn(log, detail::log_rule);
    if (f == "sqrt") return fn(sqrt, detail::sqrt_rule);
    if (f == "abs") return fn(abs, [](double a) { return detail::kAbs(a); });
    if (f == "tanh") return fn(tanh, detail::tanh_rule);
    if (f == "sigmoid") return fn(sigmoid, detail::sigmoid_rule);
    if (f == "relu") return fn(relu, [](double a) { return detail::kRelu(a); });
    pos_ = at;
    fail(fmt::format(
        "unknown function '{}' (known: exp log sqrt abs tanh sigmoid relu max min pow)", f));
  }

  const std::string& s_;
  const Leaves& vars_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

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

Scalar parse_expression(const std::string& text, const Leaves& vars) {
  return Parser(text, vars).parse();
}

}  // namespace tapegrad::cli
