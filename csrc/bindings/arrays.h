// The array types and shape checks every binding file uses (each file is its own translation unit of _core).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/common.h"

namespace convcore::bindings {

namespace py = pybind11;

using CArray = py::array_t<float, py::array::c_style>;  // C-contiguous float32, never converted (noconvert)
using OptArray = std::optional<CArray>;
using Pair = std::array<index_t, 2>;
using Quad = std::array<index_t, 4>;

inline index_t dim(const py::array& a, int i) { return static_cast<index_t>(a.shape(i)); }

inline void require_ndim(const py::array& a, int ndim, const char* name) {
  require(a.ndim() == ndim, std::string(name) + ": expected " + std::to_string(ndim) + "D array (got " +
                                std::to_string(a.ndim()) + "D)");
}

inline void require_shape(const py::array& a, const std::vector<index_t>& shape, const char* name) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = dim(a, static_cast<int>(i)) == shape[i];
  require(ok, std::string(name) + ": unexpected shape");
}

}  // namespace convcore::bindings
