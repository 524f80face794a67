#pragma once
// `tapegrad grad`, `tapegrad gradcheck` and `tapegrad example`.
#include <cstdint>
#include <string>
#include <vector>

namespace tapegrad::cli {

struct GradOptions {
  std::string expression;
  std::vector<std::string> at;  // one point per --at; recorded at the first, replayed at the rest
  std::string dot;              // output file; format from the extension
  std::string html;             // output file: the sweep explorer
  std::string jvp;              // a direction "x=1,y=0": also print the directional derivative
  bool trace = false, check = false, json = false;
  bool stats = false;  // print (or add to the JSON) what the tape holds
};
int run_grad(const GradOptions& o);

struct HessianOptions {
  std::string expression;  // one, or several separated by ';' (their weighted sum)
  std::string at;
  std::string weights;  // "1,2,...": one per expression (default all 1)
  bool sparse = false;  // only the lower triangle's nonzeros, by a star coloring
  bool json = false;
};
int run_hessian(const HessianOptions& o);

struct JacobianOptions {
  std::string expressions;  // "f; g; ..."
  std::string at;
  bool sparse = false;
  bool json = false;
  std::string pattern;  // write the sparsity pattern: FILE (.svg or text), or "-" for stdout
};
int run_jacobian(const JacobianOptions& o);
// "f; g; h" -> the expressions, trimmed; an empty one is an error naming it
// (`cmd` leads the message).
std::vector<std::string> split_expressions(const std::string& text, const char* cmd);

struct GradcheckCliOptions {
  std::string op;  // only this op ("" = all)
  int order = 1;   // 2: forward mode and Hessian-vector products as well
  bool json = false;
  std::uint64_t seed = 1;
};
int run_gradcheck(const GradcheckCliOptions& o);

struct ExampleOptions {
  int number = 1;
  std::string dot, html;
  bool trace = false, check = false;
};
int run_example(const ExampleOptions& o);

}  // namespace tapegrad::cli
