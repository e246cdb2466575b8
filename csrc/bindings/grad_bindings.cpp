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
#include "bindings/plan_binder.h"
#include "ops/activation/activation.h"
#include "ops/conv2d/conv2d_backward.h"
#include "ops/pool2d/pool2d_backward.h"
#include "plan/grad_ops.h"
#include "plan/plan.h"

namespace py = pybind11;
using namespace convcore;
using namespace convcore::bindings;

namespace {

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

void unary_input_grad_py(const CArray& v, const CArray& dy, CArray& dx, Act act, float alpha, float beta,
                         bool reference) {
  require(v.size() == dy.size() && dx.size() == dy.size(), "v, dy, dx: expected equal sizes");
  require(act_grad_from(act) != GradFrom::none, std::string("act: ") + act_name(act) + " has no derivative");
  float* out = dx.mutable_data();
  py::gil_scoped_release release;
  unary_input_grad(Epilogue{act, alpha, beta}, v.data(), dy.data(), out, dy.size(),
                   reference ? Isa::scalar : active_isa());
}

}  // namespace

void bind_grad(py::module_& m) {
  py::class_<PhaseAxis>(m, "ConvGradPhase",
                        "One axis of one stride phase of a convolution's input gradient (conv2d_backward.h).")
      .def_readonly("taps", &PhaseAxis::taps)
      .def_readonly("first_tap", &PhaseAxis::first_tap)
      .def_readonly("tap_step", &PhaseAxis::tap_step)
      .def_readonly("dilation", &PhaseAxis::dil)
      .def_readonly("count", &PhaseAxis::count)
      .def_readonly("start", &PhaseAxis::start)
      .def_readonly("lo", &PhaseAxis::lo)
      .def_readonly("hi", &PhaseAxis::hi);
  m.def("conv_grad_phases", [](index_t in, index_t out, index_t k, index_t stride, index_t dilation, index_t pad_lo) {
    require(in >= 1 && out >= 1 && k >= 1 && stride >= 1 && dilation >= 1, "conv_grad_phases: sizes must be >= 1");
    return conv_grad_phases(in, out, k, stride, dilation, pad_lo);
  }, py::arg("size"), py::arg("out"), py::arg("kernel"), py::arg("stride"), py::arg("dilation"), py::arg("pad_lo"),
     "The stride phases of one axis of a convolution's input gradient, one ConvGradPhase per residue.");
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
        py::arg("dx").noconvert(), py::arg("act"), py::arg("alpha") = 0.0f, py::arg("beta") = 0.0f,
        py::arg("reference") = false);

  // The Plan's backward ops (plan/grad_ops.h), on the class plan_bindings.cpp registered.
  using Slot = std::array<index_t, 4>;  // (phase, start, count, offset)
  auto slots = [](const std::vector<Slot>& v) {
    std::vector<PhaseSlot> out;
    for (const Slot& s : v) out.push_back({s[0], s[1], s[2], s[3]});
    return out;
  };
  auto plan = py::reinterpret_borrow<py::class_<Plan>>(m.attr("Plan"));
  plan.def("act_grad", [](Plan& p, const std::string& name, int dy, int v, const py::handle& epilogue, bool guided) {
        return plan_act_grad(p, name, dy, v, to_epilogue(epilogue), guided);
      }, py::arg("name"), py::arg("dy"), py::arg("v"), py::arg("epilogue"), py::arg("guided") = false)
      .def("interleave", [slots](Plan& p, const std::string& name, index_t H, index_t W, index_t C,
                                        const std::vector<Slot>& rows, const std::vector<Slot>& cols,
                                        const std::vector<int>& phases, int residual, int mask, float lo, float hi) {
        return plan_interleave(p, name, H, W, C, slots(rows), slots(cols), phases, residual, GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("rows"), py::arg("cols"),
         py::arg("phases"), py::arg("residual") = -1, py::arg("mask") = -1, py::arg("mask_lo") = 0.0f,
         py::arg("mask_hi") = 0.0f)
      .def("max_pool_grad", [](Plan& p, const std::string& name, int x, int dy, Pair k, Pair s, Pair d,
                                    Pair pads, int mask, float lo, float hi) {
        return plan_max_pool_grad(p, name, x, dy, k[0], k[1], s[0], s[1], d[0], d[1], pads[0], pads[1],
                                  GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("x"), py::arg("dy"), py::arg("kernel"), py::arg("stride"), py::arg("dilation"),
         py::arg("pads"), py::arg("mask") = -1, py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def("col2im", [](Plan& p, const std::string& name, int cols, index_t H, index_t W, index_t C, Pair k,
                             Pair s, Pair d, Pair pads, int residual, int mask, float lo, float hi) {
        return plan_col2im(p, name, cols, H, W, C, k[0], k[1], s[0], s[1], d[0], d[1], pads[0], pads[1], residual,
                           GradMask{mask, lo, hi});
      }, py::arg("name"), py::arg("cols"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("kernel"),
         py::arg("stride"), py::arg("dilation"), py::arg("pads"), py::arg("residual") = -1, py::arg("mask") = -1,
         py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def("avg_pool_grad", [](Plan& p, const std::string& name, int dy, index_t H, index_t W, Pair k, Pair s,
                                    Quad pads, bool count_include_pad) {
        return plan_avg_pool_grad(p, name, dy, H, W, k[0], k[1], s[0], s[1], pads[0], pads[1], pads[2], pads[3],
                                  count_include_pad);
      }, py::arg("name"), py::arg("dy"), py::arg("H"), py::arg("W"), py::arg("kernel"), py::arg("stride"),
         py::arg("pads"), py::arg("count_include_pad"));
}
