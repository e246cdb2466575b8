// Shared basics: index type, the epilogue every conv kernel applies, errors.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace convcore {

using index_t = int64_t;  // all indices are 64-bit: no overflow on large feature maps

// Output clamp fused into kernel epilogues: none = (-inf, +inf), relu = (0, +inf), relu6 = (0, 6).
struct Clamp {
  float lo;
  float hi;
};

// Elementwise binary ops (numpy semantics; max / min propagate NaN).
enum class BinaryOp : int { add = 0, mul, sub, div, max, min };

// Thrown for bad arguments that reach C++ (Python validates first; this is the second line of defence).
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

}  // namespace convcore
