// The value types Python hands to the kernels and the Plan builders: the activation and binary-op lists of
// kernels/elementwise.h as enums (Python never restates a number or a name), the epilogue, and the convolution and
// pooling specs, as classes with keyword arguments.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "kernels/elementwise.h"
#include "plan/core.h"

namespace py = pybind11;
using namespace convcore;

namespace {

using Pair = std::array<index_t, 2>;
using Quad = std::array<index_t, 4>;

const char* grad_from_name(GradFrom g) { return g == GradFrom::input ? "input" : g == GradFrom::output ? "output" : "none"; }

std::string float_text(float v) { return py::str(py::float_(v)).cast<std::string>(); }

}  // namespace

void bind_types(py::module_& m) {
  py::enum_<Act> act(m, "Act", "The elementwise activations (csrc/kernels/elementwise.h), each listed once in C++.");
#define CONVCORE_ACT_VALUE(name, grad) act.value(#name, Act::name);
  CONVCORE_ACTIVATIONS(CONVCORE_ACT_VALUE)
#undef CONVCORE_ACT_VALUE
  m.def("act_grad_from", [](Act a) { return std::string(grad_from_name(act_grad_from(a))); }, py::arg("act"),
        "What the activation's derivative is computed from: 'input', 'output' or 'none' (no backward).");

  py::enum_<BinaryOp> bop(m, "BinaryOp", "The broadcasting binary ops (csrc/kernels/elementwise.h).");
#define CONVCORE_BINARY_VALUE(name) bop.value(#name, BinaryOp::name);
  CONVCORE_BINARY_OPS(CONVCORE_BINARY_VALUE)
#undef CONVCORE_BINARY_VALUE

  py::enum_<ConvAlgo>(m, "ConvAlgo", "Which convolution kernel a Plan uses (automatic: the builder picks).")
      .value("automatic", ConvAlgo::automatic)
      .value("igemm", ConvAlgo::igemm)
      .value("depthwise", ConvAlgo::depthwise)
      .value("winograd", ConvAlgo::winograd);

  py::class_<Epilogue>(m, "Epilogue",
                       "The last step of a kernel: act(v) with the activation's parameters (alpha, beta), then, "
                       "with a mask tensor, v kept where mask_lo < mask < mask_hi (0 elsewhere).")
      .def(py::init([](Act act, float alpha, float beta, float mask_lo, float mask_hi) {
             return Epilogue{act, alpha, beta, mask_lo, mask_hi};
           }),
           py::kw_only(), py::arg("act") = Act::none, py::arg("alpha") = 0.0f, py::arg("beta") = 0.0f,
           py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def_readwrite("act", &Epilogue::act)
      .def_readwrite("alpha", &Epilogue::alpha)
      .def_readwrite("beta", &Epilogue::beta)
      .def_readwrite("mask_lo", &Epilogue::mask_lo)
      .def_readwrite("mask_hi", &Epilogue::mask_hi)
      .def("__repr__", [](const Epilogue& e) {
        return std::string("Epilogue(act=Act.") + act_name(e.act) + ", alpha=" + float_text(e.alpha) +
               ", beta=" + float_text(e.beta) + ", mask_lo=" + float_text(e.mask_lo) +
               ", mask_hi=" + float_text(e.mask_hi) + ")";
      });

  py::class_<ConvSpec>(m, "ConvSpec",
                       "A convolution's geometry (its weight (K, C / groups, R, S) gives the rest): stride, dilation, "
                       "padding (top, bottom, left, right), groups.")
      .def(py::init([](Pair stride, Pair dilation, Quad padding, index_t groups) {
             ConvSpec s;
             s.sh = stride[0], s.sw = stride[1], s.dh = dilation[0], s.dw = dilation[1];
             s.pt = padding[0], s.pb = padding[1], s.pl = padding[2], s.pr = padding[3], s.groups = groups;
             return s;
           }),
           py::kw_only(), py::arg("stride") = Pair{1, 1}, py::arg("dilation") = Pair{1, 1},
           py::arg("padding") = Quad{0, 0, 0, 0}, py::arg("groups") = 1)
      .def_property_readonly("stride", [](const ConvSpec& s) { return Pair{s.sh, s.sw}; })
      .def_property_readonly("dilation", [](const ConvSpec& s) { return Pair{s.dh, s.dw}; })
      .def_property_readonly("padding", [](const ConvSpec& s) { return Quad{s.pt, s.pb, s.pl, s.pr}; })
      .def_readonly("groups", &ConvSpec::groups)
      .def("__repr__", [](const ConvSpec& s) {
        return "ConvSpec(stride=(" + std::to_string(s.sh) + ", " + std::to_string(s.sw) + "), dilation=(" +
               std::to_string(s.dh) + ", " + std::to_string(s.dw) + "), padding=(" + std::to_string(s.pt) + ", " +
               std::to_string(s.pb) + ", " + std::to_string(s.pl) + ", " + std::to_string(s.pr) +
               "), groups=" + std::to_string(s.groups) + ")";
      });

  py::class_<PoolSpec>(m, "PoolSpec",
                       "A pooling window: max or average, kernel, stride, dilation, padding (top, bottom, left, "
                       "right), the output size (OH, OW) and whether an average counts the padding.")
      .def(py::init([](bool is_max, Pair kernel, Pair stride, Pair dilation, Quad padding, Pair output,
                       bool count_include_pad) {
             PoolSpec s;
             s.is_max = is_max, s.kh = kernel[0], s.kw = kernel[1], s.sh = stride[0], s.sw = stride[1];
             s.dh = dilation[0], s.dw = dilation[1], s.pt = padding[0], s.pb = padding[1], s.pl = padding[2];
             s.pr = padding[3], s.OH = output[0], s.OW = output[1], s.count_include_pad = count_include_pad;
             return s;
           }),
           py::kw_only(), py::arg("is_max"), py::arg("kernel"), py::arg("stride"), py::arg("dilation") = Pair{1, 1},
           py::arg("padding") = Quad{0, 0, 0, 0}, py::arg("output"), py::arg("count_include_pad") = false)
      .def_readonly("is_max", &PoolSpec::is_max)
      .def_property_readonly("kernel", [](const PoolSpec& s) { return Pair{s.kh, s.kw}; })
      .def_property_readonly("stride", [](const PoolSpec& s) { return Pair{s.sh, s.sw}; })
      .def_property_readonly("dilation", [](const PoolSpec& s) { return Pair{s.dh, s.dw}; })
      .def_property_readonly("padding", [](const PoolSpec& s) { return Quad{s.pt, s.pb, s.pl, s.pr}; })
      .def_property_readonly("output", [](const PoolSpec& s) { return Pair{s.OH, s.OW}; })
      .def_readonly("count_include_pad", &PoolSpec::count_include_pad);
}
