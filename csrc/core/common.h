// Shared basics: index type, errors, integer arithmetic.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace convcore {

using index_t = int64_t;  // all indices are 64-bit: no overflow on large feature maps

// Thrown for bad arguments that reach C++ (Python validates first; this is the second line of defence).
inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Output length of a convolution or window along one axis: floor((in + pads - dilation * (k - 1) - 1) / stride) + 1
// (python/convcore/ops/window.py has the Python side, with the ceil rules).
inline index_t conv_out_size(index_t in, index_t k, index_t stride, index_t dil, index_t pad_lo, index_t pad_hi) {
  return (in + pad_lo + pad_hi - dil * (k - 1) - 1) / stride + 1;
}

}  // namespace convcore
