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
    Scalar v = expr();
    skip();
    if (pos_ != s_.size()) fail(fmt::format("unexpected '{}'", s_[pos_]));
    return v;
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

  Scalar expr() {
    Depth d(*this);
    Scalar v = term();
    for (;;) {
      if (eat('+'))
        v = v + term();
      else if (eat('-'))
        v = v - term();
      else
        return v;
    }
  }
  Scalar term() {
    Scalar v = unary();
    for (;;) {
      if (eat('*'))
        v = v * unary();
      else if (eat('/'))
        v = v / unary();
      else
        return v;
    }
  }
  Scalar unary() {
    Depth d(*this);
    if (eat('-')) return -unary();
    if (eat('+')) return unary();
    Scalar base = primary();
    if (eat('^')) return pow(base, unary());  // right-associative: 2^3^2 = 2^9
    return base;
  }
  Scalar primary() {
    skip();
    if (pos_ >= s_.size()) fail("expected a number, a variable or '('");
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      Scalar v = expr();
      expect(')');
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      const char* start = s_.c_str() + pos_;
      char* end = nullptr;
      const double v = std::strtod(start, &end);
      if (end == start) fail("malformed number");
      pos_ += static_cast<std::size_t>(end - start);
      return current_tape().constant(v);
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
      return it->second;
    }
    fail(fmt::format("unexpected '{}'", c));
  }
  Scalar call(const std::string& f, std::size_t at) {
    std::vector<Scalar> args{expr()};
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
      return f == "max"   ? max(args[0], args[1])
             : f == "min" ? min(args[0], args[1])
                          : pow(args[0], args[1]);
    }
    arity(1);
    if (f == "exp") return exp(args[0]);
    if (f == "log") return log(args[0]);
    if (f == "sqrt") return sqrt(args[0]);
    if (f == "abs") return abs(args[0]);
    if (f == "tanh") return tanh(args[0]);
    if (f == "sigmoid") return sigmoid(args[0]);
    if (f == "relu") return relu(args[0]);
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
