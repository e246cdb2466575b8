// Bindings of the backward kernels (input gradients) that convcore.gradients runs through the ops' backward rules.
// Thin, like module.cpp: Python (the rules in python/convcore/ops) validates and allocates; these re-check the sizes
// the kernels rely on, take C-contiguous float32 arrays without conversion and release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "ops/activation/activation_backward.h"
#include "ops/conv2d/conv2d_backward.h"
#include "ops/pool2d/pool2d_backward.h"
#include "plan/grad_ops.h"
#include "plan/plan.h"

namespace py = pybind11;
using namespace convcore;
using namespace convcore::bindings;

namespace {

UnaryOp unary_op(const std::string& name) {
  static const std::pair<const char*, UnaryOp> ops[] = {
      {"relu", UnaryOp::relu},       {"relu6", UnaryOp::relu6}, {"leaky_relu", UnaryOp::leaky_relu},
      {"sigmoid", UnaryOp::sigmoid}, {"tanh", UnaryOp::tanh},   {"silu", UnaryOp::silu},
      {"hardswish", UnaryOp::hardswish}, {"hardsigmoid", UnaryOp::hardsigmoid}};
  for (const auto& [n, op] : ops)
    if (name == n) return op;
  throw std::invalid_argument("op: unknown activation '" + name + "'");
}

// The forward problem whose input gradient is wanted: x's size comes from dx, the output's from dy.
Conv2dShape conv_shape(const CArray& dy, const CArray& w, const CArray& dx, Pair stride, Pair dilation, Quad padding,
                       index_t groups) {
  require_ndim(dy, 4, "dy");
  require_ndim(w, 4, "weight");
  require_ndim(dx, 4, "dx");
  require(groups >= 1, "groups: expected >= 1");
  Conv2dShape s{dim(dx, 0), dim(dx, 1), dim(dx, 2), dim(dx, 3), dim(w, 0), dim(w, 2), dim(w, 3), dim(dy, 2),
                dim(dy, 3), stride[0], stride[1], dilation[0], dilation[1], padding[0], padding[1], padding[2],
                padding[3], groups};
  conv2d_check(s);
  require(dim(w, 1) * groups == s.C, "weight: in_channels / groups mismatch");
  require_shape(dy, {s.N, s.K, s.OH, s.OW}, "dy");
  return s;
}

void conv2d_input_grad_weights_py(const CArray& w, CArray& out, Pair stride, Pair dilation, index_t groups) {
  require_ndim(w, 4, "weight");
  require(groups >= 1 && stride[0] >= 1 && stride[1] >= 1 && dilation[0] >= 1 && dilation[1] >= 1,
          "stride, dilation, groups: expected >= 1");
  require(out.size() == w.size(), "out: expected as many elements as weight");
  // The rearrangement depends on the kernel, stride, dilation and groups only: any consistent spatial size will do.
  const Conv2dShape s{1, dim(w, 1) * groups, 1, 1, dim(w, 0), dim(w, 2), dim(w, 3), 1, 1, stride[0], stride[1],
                      dilation[0], dilation[1], 0, 0, 0, 0, groups};
  require(s.K % groups == 0, "groups: expected a divisor of the output channels");
  float* o = out.mutable_data();
  py::gil_scoped_release release;
  conv2d_input_grad_weights(s, w.data(), o);
}

void conv2d_input_grad_py(const CArray& dy, const CArray& w, const OptArray& wt, CArray& dx, Pair stride,
                          Pair dilation, Quad padding, index_t groups) {
  const Conv2dShape s = conv_shape(dy, w, dx, stride, dilation, padding, groups);
  if (wt) require(wt->size() == w.size(), "weight_t: expected as many elements as weight");
  const float* wtp = wt ? wt->data() : nullptr;
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  conv2d_input_grad(s, dy.data(), w.data(), wtp, out);
}

void conv2d_input_grad_ref_py(const CArray& dy, const CArray& w, CArray& dx, Pair stride, Pair dilation, Quad padding,
                              index_t groups) {
  const Conv2dShape s = conv_shape(dy, w, dx, stride, dilation, padding, groups);
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  conv2d_input_grad_ref(s, dy.data(), w.data(), out);
}

Pool2dShape pool_shape(const CArray& dy, const CArray& dx, Pair kernel, Pair stride, Pair dilation, Quad padding) {
  require_ndim(dy, 4, "dy");
  require_ndim(dx, 4, "dx");
  Pool2dShape s{dim(dx, 0), dim(dx, 1), dim(dx, 2), dim(dx, 3), dim(dy, 2), dim(dy, 3), kernel[0], kernel[1],
                stride[0], stride[1], dilation[0], dilation[1], padding[0], padding[1], padding[2], padding[3]};
  pool2d_check(s);
  require(dim(dy, 0) == s.N && dim(dy, 1) == s.C, "dy: batch / channel mismatch");
  return s;
}

void max_pool2d_input_grad_py(const CArray& x, const CArray& dy, CArray& dx, Pair kernel, Pair stride, Pair dilation,
                              Quad padding) {
  const Pool2dShape s = pool_shape(dy, dx, kernel, stride, dilation, padding);
  require_shape(x, {s.N, s.C, s.H, s.W}, "x");
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  max_pool2d_input_grad(s, x.data(), dy.data(), out);
}

void avg_pool2d_input_grad_py(const CArray& dy, CArray& dx, Pair kernel, Pair stride, Quad padding,
                              bool count_include_pad) {
  const Pool2dShape s = pool_shape(dy, dx, kernel, stride, {1, 1}, padding);
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  avg_pool2d_input_grad(s, count_include_pad, dy.data(), out);
}

void adaptive_pool2d_input_grad_py(const OptArray& x, const CArray& dy, CArray& dx, bool is_max) {
  require_ndim(dy, 4, "dy");
  require_ndim(dx, 4, "dx");
  require(dim(dy, 0) == dim(dx, 0) && dim(dy, 1) == dim(dx, 1), "dy: batch / channel mismatch");
  require(!is_max || x, "x: required for max pooling");
  if (x) require_shape(*x, {dim(dx, 0), dim(dx, 1), dim(dx, 2), dim(dx, 3)}, "x");
  const float* xp = x ? x->data() : nullptr;
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  adaptive_pool2d_input_grad(is_max, dim(dx, 0), dim(dx, 1), dim(dx, 2), dim(dx, 3), dim(dy, 2), dim(dy, 3), xp,
                             dy.data(), out);
}

void unary_input_grad_py(const CArray& v, const CArray& dy, CArray& dx, const std::string& op, float alpha,
                         bool reference) {
  require(v.size() == dy.size() && dx.size() == dy.size(), "v, dy, dx: expected equal sizes");
  const UnaryOp u = unary_op(op);
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  (reference ? unary_input_grad_ref : unary_input_grad)(u, alpha, v.data(), dy.data(), out, dy.size());
}

}  // namespace

void bind_grad(py::module_& m) {
  m.def("conv2d_input_grad_weights", &conv2d_input_grad_weights_py, py::arg("weight").noconvert(),
        py::arg("out").noconvert(), py::arg("stride"), py::arg("dilation"), py::arg("groups"));
  m.def("conv2d_input_grad", &conv2d_input_grad_py, py::arg("dy").noconvert(), py::arg("weight").noconvert(),
        py::arg("weight_t").noconvert(), py::arg("dx").noconvert(), py::arg("stride"), py::arg("dilation"),
        py::arg("padding"), py::arg("groups"));
  m.def("conv2d_input_grad_ref", &conv2d_input_grad_ref_py, py::arg("dy").noconvert(), py::arg("weight").noconvert(),
        py::arg("dx").noconvert(), py::arg("stride"), py::arg("dilation"), py::arg("padding"), py::arg("groups"));
  m.def("max_pool2d_input_grad", &max_pool2d_input_grad_py, py::arg("x").noconvert(), py::arg("dy").noconvert(),
        py::arg("dx").noconvert(), py::arg("kernel"), py::arg("stride"), py::arg("dilation"), py::arg("padding"));
  m.def("avg_pool2d_input_grad", &avg_pool2d_input_grad_py, py::arg("dy").noconvert(), py::arg("dx").noconvert(),
        py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"));
  m.def("adaptive_pool2d_input_grad", &adaptive_pool2d_input_grad_py, py::arg("x").noconvert(),
        py::arg("dy").noconvert(), py::arg("dx").noconvert(), py::arg("is_max"));
  m.def("unary_input_grad", &unary_input_grad_py, py::arg("v").noconvert(), py::arg("dy").noconvert(),
        py::arg("dx").noconvert(), py::arg("op"), py::arg("alpha") = 0.0f, py::arg("reference") = false);

  // The Plan's backward ops (plan/grad_ops.h), on the class plan_bindings.cpp registered.
  using Slot = std::array<index_t, 4>;  // (phase, start, count, offset)
  auto slots = [](const std::vector<Slot>& v) {
    std::vector<PhaseSlot> out;
    for (const Slot& s : v) out.push_back({s[0], s[1], s[2], s[3]});
    return out;
  };
  auto check = [](const Plan& p, int t, const char* name) {
    require(t >= 0 && t < p.num_tensors(), std::string(name) + ": unknown tensor id");
  };
  auto plan = py::reinterpret_borrow<py::class_<Plan>>(m.attr("Plan"));
  plan.def("act_grad", [check](Plan& p, const std::string& name, int dy, int v, const std::string& op, float alpha) {
        check(p, dy, "dy");
        check(p, v, "v");
        return plan_act_grad(p, name, dy, v, unary_op(op), alpha);
      }, py::arg("name"), py::arg("dy"), py::arg("v"), py::arg("op"), py::arg("alpha") = 0.0f)
      .def("interleave", [check, slots](Plan& p, const std::string& name, index_t H, index_t W, index_t C,
                                        const std::vector<Slot>& rows, const std::vector<Slot>& cols,
                                        const std::vector<int>& phases, int residual, int mask, float lo, float hi) {
        if (residual >= 0) check(p, residual, "residual");
        return plan_interleave(p, name, H, W, C, slots(rows), slots(cols), phases, residual, GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("rows"), py::arg("cols"),
         py::arg("phases"), py::arg("residual") = -1, py::arg("mask") = -1, py::arg("mask_lo") = 0.0f,
         py::arg("mask_hi") = 0.0f)
      .def("max_pool_grad", [check](Plan& p, const std::string& name, int x, int dy, Pair k, Pair s, Pair d,
                                    Pair pads, int mask, float lo, float hi) {
        check(p, x, "x");
        check(p, dy, "dy");
        return plan_max_pool_grad(p, name, x, dy, k[0], k[1], s[0], s[1], d[0], d[1], pads[0], pads[1],
                                  GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("x"), py::arg("dy"), py::arg("kernel"), py::arg("stride"), py::arg("dilation"),
         py::arg("pads"), py::arg("mask") = -1, py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def("col2im", [check](Plan& p, const std::string& name, int cols, index_t H, index_t W, index_t C, Pair k,
                             Pair s, Pair d, Pair pads, int residual, int mask, float lo, float hi) {
        check(p, cols, "cols");
        if (residual >= 0) check(p, residual, "residual");
        return plan_col2im(p, name, cols, H, W, C, k[0], k[1], s[0], s[1], d[0], d[1], pads[0], pads[1], residual,
                           GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("cols"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("kernel"),
         py::arg("stride"), py::arg("dilation"), py::arg("pads"), py::arg("residual") = -1, py::arg("mask") = -1,
         py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def("avg_pool_grad", [check](Plan& p, const std::string& name, int dy, index_t H, index_t W, Pair k, Pair s,
                                    Quad pads, bool count_include_pad) {
        check(p, dy, "dy");
        return plan_avg_pool_grad(p, name, dy, H, W, k[0], k[1], s[0], s[1], pads[0], pads[1], pads[2], pads[3],
                                  count_include_pad);
      }, py::arg("name"), py::arg("dy"), py::arg("H"), py::arg("W"), py::arg("kernel"), py::arg("stride"),
         py::arg("pads"), py::arg("count_include_pad"));
}
