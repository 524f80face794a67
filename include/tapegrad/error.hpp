#pragma once
// Every failure tapegrad reports is a tapegrad::Error whose message names the
// operation, the values involved (shapes, indices, file names) and, where one
// exists, what to do about it.
#include <stdexcept>
#include <string>

namespace tapegrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tapegrad
