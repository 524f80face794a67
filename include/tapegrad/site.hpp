#pragma once
// Source locations of nodes: every op records the line of the user's code
// that called it, for anomaly errors, node checks and inspection.
#include <source_location>
#include <string>

namespace tapegrad {

// Where a node was created: every op takes the caller's source location (a
// defaulted last parameter; operators get it through detail::At), and the
// node keeps it for anomaly errors and node checks.
#if defined(__cpp_lib_source_location)
using Site = std::source_location;
#else
// Compilers whose standard library lacks std::source_location (clang 14 with
// GCC 12's libstdc++, used for the fuzz targets) get the same interface from
// the builtins that GCC and clang share; in a default argument they name the
// caller's line too. (A library and its users must agree on which one.)
class Site {
 public:
  static constexpr Site current(const char* file = __builtin_FILE(),
                                const char* function = __builtin_FUNCTION(),
                                unsigned line = __builtin_LINE(),
                                unsigned column = __builtin_COLUMN()) noexcept {
    Site s;
    s.file_ = file, s.function_ = function, s.line_ = line, s.column_ = column;
    return s;
  }
  constexpr Site() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr unsigned line() const noexcept { return line_; }
  constexpr unsigned column() const noexcept { return column_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  unsigned line_ = 0, column_ = 0;
};
#endif
// "file:line (function)", or "" for an unknown site.
std::string site_str(const Site& s);

namespace detail {
// An operand that brings the caller's source location into an operator,
// which cannot have a defaulted parameter of its own: the implicit
// conversion to At<T> happens at the call site, so Site::current() in the
// constructor's default argument names the line of the expression.
template <class T>
struct At {
  At(const T& value, Site where = Site::current()) : v(value), where(where) {}
  const T& v;
  Site where;
};
}  // namespace detail

}  // namespace tapegrad
