// The expression language of `tapegrad grad`.
#include "../../tools/tapegrad/expr.hpp"

#include "helpers.hpp"

using Catch::Matchers::Contains;
namespace cli = tapegrad::cli;

namespace {
double eval(const std::string& e, const std::string& at,
            std::map<std::string, double>* grads = nullptr) {
  tg::Tape tape;
  tg::TapeScope scope(tape);
  cli::Leaves leaves;
  for (const auto& [n, v] : cli::parse_bindings(at)) leaves[n] = tg::var(v);
  tg::Scalar f = cli::parse_expression(e, leaves);
  f.backward();
  if (grads)
    for (auto& [n, s] : leaves) (*grads)[n] = s.grad();
  return f.value();
}
}  // namespace

TEST_CASE("expressions: precedence, associativity, functions, gradients", "[expr]") {
  std::map<std::string, double> g;
  CHECK(eval("(x+y)*z", "x=-2,y=5,z=-4", &g) == -12);
  CHECK(g["x"] == -4);
  CHECK(g["z"] == 3);
  CHECK(eval("2^3^2", "") == 512);
  CHECK(eval("-x^2", "x=3") == -9);
  CHECK(eval("1 - 2 - 3", "") == -4);
  CHECK(eval("8 / 2 / 2", "") == 2);
  CHECK(eval("max(x, y) + min(x, y) * relu(-x) + abs(x)", "x=-1.5 y=2") ==
        Approx(2 + -1.5 * 1.5 + 1.5));
  CHECK(eval("exp(log(sqrt(x)))", "x=4") == Approx(2));
  CHECK(eval("tanh(0) + sigmoid(0) + pow(x, 2)", "x=3") == Approx(9.5));
  CHECK(eval("1.5e2 + .5", "") == 150.5);
}

TEST_CASE("expression errors point at the column and name the problem", "[expr][errors]") {
  REQUIRE_THROWS_WITH(eval("(x+y", "x=1,y=2"), "1:5: expected ')'");
  REQUIRE_THROWS_WITH(eval("x + w", "x=1"), Contains("1:5: unknown variable 'w'"));
  REQUIRE_THROWS_WITH(eval("foo(x)", "x=1"), Contains("1:1: unknown function 'foo'"));
  REQUIRE_THROWS_WITH(eval("max(x)", "x=1"), Contains("max() takes 2 arguments, got 1"));
  REQUIRE_THROWS_WITH(eval("x +", "x=1"), Contains("1:4: expected a number"));
  REQUIRE_THROWS_WITH(eval("", ""), Contains("empty expression"));
  REQUIRE_THROWS_WITH(eval("x $ 2", "x=1"), Contains("1:3: unexpected '$'"));
  REQUIRE_THROWS_WITH(cli::parse_bindings("x=1,y"), Contains("'y' is not of the form name=value"));
  REQUIRE_THROWS_WITH(cli::parse_bindings("x=abc"), Contains("'abc' is not a number"));
  REQUIRE_THROWS_WITH(cli::parse_bindings("x=1,x=2"), Contains("'x' is given twice"));
}

TEST_CASE("deep nesting and very long inputs fail cleanly or work, never crash", "[expr][errors]") {
  const std::string deep = std::string(100000, '(') + "x" + std::string(100000, ')');
  REQUIRE_THROWS_WITH(eval(deep, "x=1"), Contains("nesting deeper than"));
  REQUIRE_THROWS_WITH(eval(std::string(100000, '-') + "x", "x=1"), Contains("nesting deeper than"));
  std::string sum = "x";
  for (int i = 0; i < 100000; ++i) sum += "+x";
  std::map<std::string, double> g;
  CHECK(eval(sum, "x=0.5", &g) == Approx(50000.5));
  CHECK(g["x"] == 100001);
  REQUIRE_THROWS_WITH(eval(std::string(2 << 20, 'x'), "x=1"), Contains("longer than the limit"));
}
