// One binder for every Plan builder (plan/builder.h): the CPU Plan (_core.Plan, plan_bindings.cpp) and the GPU Plan
// (_cuda.Plan, cuda_module.cpp) get the same methods with the same arguments from here. The value types (Epilogue,
// ConvSpec, PoolSpec, the enums) are _core's classes (types.cpp); they are read by attribute, so the separately built
// _cuda module takes _core's objects without sharing pybind11 type registrations.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "plan/builder.h"

namespace convcore::bindings {

namespace py = pybind11;
using PlanArray = py::array_t<float, py::array::c_style>;
using PlanIndexArray = py::array_t<index_t, py::array::c_style>;
using OptPlanArray = std::optional<PlanArray>;
using PlanPair = std::array<index_t, 2>;
using PlanQuad = std::array<index_t, 4>;

template <class E>
E to_enum(const py::handle& h) {
  return static_cast<E>(py::int_(py::reinterpret_borrow<py::object>(h)).cast<int>());
}

inline Epilogue to_epilogue(const py::handle& h) {
  if (h.is_none()) return Epilogue{};
  if (!py::hasattr(h, "act") || !py::hasattr(h, "mask_hi"))
    throw py::type_error("epilogue: expected a convcore._core.Epilogue (got " +
                         std::string(py::str(py::type::handle_of(h).attr("__name__"))) + ")");
  return Epilogue{to_enum<Act>(h.attr("act")), h.attr("alpha").cast<float>(),
                  h.attr("beta").cast<float>(), h.attr("mask_lo").cast<float>(), h.attr("mask_hi").cast<float>()};
}

// A ConvSpec's geometry with the weight's (K, C / groups, R, S) (float or int8 weights).
template <class Array>
ConvSpec to_conv_spec(const py::handle& h, const Array& w) {
  require(w.ndim() == 4, "weight: expected (K, C / groups, R, S)");
  const auto stride = h.attr("stride").cast<PlanPair>(), dilation = h.attr("dilation").cast<PlanPair>();
  const auto pads = h.attr("padding").cast<PlanQuad>();
  return ConvSpec{w.shape(0), w.shape(1), w.shape(2), w.shape(3), stride[0], stride[1], dilation[0], dilation[1],
                  pads[0],    pads[1],    pads[2],    pads[3],    h.attr("groups").cast<index_t>()};
}

inline PoolSpec to_pool_spec(const py::handle& h) {
  const auto k = h.attr("kernel").cast<PlanPair>(), s = h.attr("stride").cast<PlanPair>();
  const auto d = h.attr("dilation").cast<PlanPair>(), out = h.attr("output").cast<PlanPair>();
  const auto p = h.attr("padding").cast<PlanQuad>();
  return PoolSpec{h.attr("is_max").cast<bool>(), k[0], k[1], s[0], s[1], d[0], d[1], p[0], p[1], p[2], p[3],
                  out[0], out[1], h.attr("count_include_pad").cast<bool>()};
}


inline void check_len(const OptPlanArray& a, index_t n, const char* name) {
  require(!a || (a->ndim() == 1 && a->shape(0) == n),
          std::string(name) + ": expected shape (" + std::to_string(n) + ",)");
}

inline const float* data_of(const OptPlanArray& a) { return a ? a->data() : nullptr; }

// The builder methods every backend has (C++ checks them; these only read arrays and value types).
template <class P, class... Extra>
void bind_builder(py::class_<P, Extra...>& c) {
  c.def("add_input", &P::add_input, py::arg("C"), py::arg("H"), py::arg("W"), py::arg("nhwc") = false)
      .def("add_output", &P::add_output, py::arg("t"), py::arg("nchw"))
      .def("tensor", &P::add_tensor, py::arg("H"), py::arg("W"), py::arg("C"))
      .def("dims", [](const P& p, int t) {
        const TensorDesc& d = p.tensor(p.check(t, "t"));
        return py::make_tuple(d.H, d.W, d.C);
      }, py::arg("t"))
      .def("constant", [](P& p, const PlanArray& a) {
        require(a.ndim() == 3, "constant: expected an (H, W, C) array");
        return p.add_constant(a.shape(0), a.shape(1), a.shape(2), a.data());
      }, py::arg("nhwc").noconvert())
      .def("alias", &P::alias, py::arg("child"), py::arg("parent"), py::arg("c0"))
      .def("aliasable", [](const P& p, int t) { return p.aliasable(p.check(t, "t")); }, py::arg("t"))
      .def("reshape", &P::reshape, py::arg("t"), py::arg("H"), py::arg("W"), py::arg("C"))
      .def("conv", [](P& p, const std::string& name, int x, const PlanArray& w, const OptPlanArray& bias,
                      const py::handle& spec, const py::handle& epilogue, int residual, const py::handle& algo,
                      int scale, int mask) {
        const ConvSpec s = to_conv_spec(spec, w);
        check_len(bias, s.K, "bias");
        return p.conv(name, x, s, w.data(), data_of(bias), to_epilogue(epilogue), residual, to_enum<ConvAlgo>(algo),
                      scale, mask);
      }, py::arg("name"), py::arg("x"), py::arg("weight").noconvert(), py::arg("bias").noconvert(), py::kw_only(),
         py::arg("spec"), py::arg("epilogue") = py::none(), py::arg("residual") = -1,
         py::arg("algo") = static_cast<int>(ConvAlgo::automatic), py::arg("scale") = -1, py::arg("mask") = -1)
      .def("mbconv", [](P& p, const std::string& name, int x, const OptPlanArray& we, const OptPlanArray& be,
                        const py::handle& ee, const PlanArray& wd, const OptPlanArray& bd, const py::handle& dw_spec,
                        const py::handle& ed, const OptPlanArray& wp, const OptPlanArray& bp, const py::handle& ep,
                        int residual) {
        const index_t C = p.tensor(p.check(x, "x")).C;
        index_t E = C;
        if (we) {
          require(we->ndim() == 4 && we->shape(1) == C && we->shape(2) == 1 && we->shape(3) == 1,
                  "we: expected the expand weight (E, C, 1, 1)");
          E = we->shape(0);
          check_len(be, E, "be");
        }
        require(wd.ndim() == 4 && wd.shape(0) == E && wd.shape(1) == 1, "wd: expected the depthwise weight (E, 1, R, S)");
        check_len(bd, E, "bd");
        require(!wp || (wp->ndim() == 4 && wp->shape(1) == E && wp->shape(2) == 1 && wp->shape(3) == 1),
                "wp: expected the project weight (K, E, 1, 1)");
        const index_t K = wp ? wp->shape(0) : E;
        check_len(bp, K, "bp");
        return p.mbconv(name, x, data_of(we), data_of(be), E, to_epilogue(ee), to_conv_spec(dw_spec, wd), wd.data(),
                        data_of(bd), to_epilogue(ed), data_of(wp), data_of(bp), K, to_epilogue(ep), residual);
      }, py::arg("name"), py::arg("x"), py::kw_only(), py::arg("we").noconvert(), py::arg("be").noconvert(),
         py::arg("ee"), py::arg("wd").noconvert(), py::arg("bd").noconvert(), py::arg("dw_spec"), py::arg("ed"),
         py::arg("wp").noconvert(), py::arg("bp").noconvert(), py::arg("ep"), py::arg("residual") = -1)
      .def("pool", [](P& p, const std::string& name, int x, const py::handle& spec) {
        return p.pool(name, x, to_pool_spec(spec));
      }, py::arg("name"), py::arg("x"), py::arg("spec"))
      .def("global_pool", &P::global_pool, py::arg("name"), py::arg("x"), py::arg("is_max"))
      .def("adaptive_pool", [](P& p, const std::string& name, int x, bool is_max, PlanPair out) {
        return p.adaptive_pool(name, x, is_max, out[0], out[1]);
      }, py::arg("name"), py::arg("x"), py::arg("is_max"), py::arg("output"))
      .def("affine", [](P& p, const std::string& name, int x, const OptPlanArray& scale, const OptPlanArray& shift,
                        const py::handle& epilogue) {
        const index_t C = p.tensor(p.check(x, "x")).C;
        check_len(scale, C, "scale");
        check_len(shift, C, "shift");
        return p.affine(name, x, data_of(scale), data_of(shift), to_epilogue(epilogue));
      }, py::arg("name"), py::arg("x"), py::arg("scale").noconvert(), py::arg("shift").noconvert(),
         py::arg("epilogue") = py::none())
      .def("binary", [](P& p, const std::string& name, int a, int b, const py::handle& op, const py::handle& epilogue) {
        return p.binary(name, a, b, to_enum<BinaryOp>(op), to_epilogue(epilogue));
      }, py::arg("name"), py::arg("a"), py::arg("b"), py::arg("op"), py::arg("epilogue") = py::none())
      .def("copy_into", &P::copy_into, py::arg("name"), py::arg("x"), py::arg("y"), py::arg("c0"))
      .def("copy_pixels_into", &P::copy_pixels_into, py::arg("name"), py::arg("x"), py::arg("y"), py::arg("p0"))
      .def("gather_channels", [](P& p, const std::string& name, int x, const PlanIndexArray& index) {
        require(index.ndim() == 1, "index: expected a 1-D table of channel indices");
        return p.gather_channels(name, x, index.data(), index.shape(0));
      }, py::arg("name"), py::arg("x"), py::arg("index").noconvert())
      .def("softmax", &P::softmax, py::arg("name"), py::arg("x"), py::arg("log"))
      .def("layer_norm", [](P& p, const std::string& name, int x, const OptPlanArray& scale, const OptPlanArray& shift,
                            float eps, const py::handle& epilogue) {
        const index_t C = p.tensor(p.check(x, "x")).C;
        check_len(scale, C, "scale");
        check_len(shift, C, "shift");
        return p.layer_norm(name, x, data_of(scale), data_of(shift), eps, to_epilogue(epilogue));
      }, py::arg("name"), py::arg("x"), py::arg("scale").noconvert(), py::arg("shift").noconvert(), py::arg("eps"),
         py::arg("epilogue") = py::none())
      .def("lrn", &P::lrn, py::arg("name"), py::arg("x"), py::arg("size"), py::arg("alpha"), py::arg("beta"),
           py::arg("k"))
      .def("resample",
           [](P& p, const std::string& name, int x, const PlanIndexArray& index_h, const PlanArray& weight_h,
              const PlanIndexArray& index_w, const PlanArray& weight_w, float fill) {
    auto table = [](const PlanIndexArray& index, const PlanArray& weight, const char* what) {
      require(index.ndim() == 2 && weight.ndim() == 2 && index.shape(0) == weight.shape(0) &&
                  index.shape(1) == weight.shape(1),
              std::string(what) + ": expected index and weight tables of one shape (outputs, taps)");
    };
    table(index_h, weight_h, "index_h, weight_h");
    table(index_w, weight_w, "index_w, weight_w");
    return p.resample(name, x, index_h.shape(0), index_w.shape(0), index_h.shape(1), index_h.data(), weight_h.data(),
                      index_w.shape(1), index_w.data(), weight_w.data(), fill);
  },
           py::arg("name"), py::arg("x"), py::kw_only(), py::arg("index_h").noconvert(),
           py::arg("weight_h").noconvert(), py::arg("index_w").noconvert(), py::arg("weight_w").noconvert(),
           py::arg("fill") = 0.0f)
      .def("flatten_nchw", &P::flatten_nchw, py::arg("name"), py::arg("x"))
      .def("channel_slice", &P::channel_slice, py::arg("name"), py::arg("x"), py::arg("c0"), py::arg("C"))
      .def("output_shapes", &P::output_shapes, py::arg("N"))
      .def("ops", [](const P& p) {
        py::list out;
        for (const auto& op : p.ops()) out.append(py::make_tuple(op->name, op->kind, op->detail, op->flops_per_image));
        return out;
      })
      .def("arena_bytes", &P::arena_bytes, py::arg("N"))
      .def_property_readonly("weight_bytes", &P::weight_bytes)
      .def_property_readonly("held_bytes", &P::held_bytes)
      .def_property_readonly("capabilities", [](const P& p) {
        py::set out;
        for (const std::string& s : p.capabilities()) out.add(s);
        return py::frozenset(out);
      });
}

// numpy inputs and outputs of a run, checked: input pointers, output pointers, the batch.
template <class P>
index_t check_run_arrays(const P& p, const std::vector<PlanArray>& xs, std::vector<PlanArray>& outs,
                         std::vector<const float*>& in_ptrs, std::vector<float*>& out_ptrs) {
  require(xs.size() == p.inputs().size(), "xs: expected one array per plan input");
  require(!xs.empty() && xs[0].ndim() >= 1 && xs[0].shape(0) >= 1, "xs: expected a batch of at least one");
  const index_t N = xs[0].shape(0);
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::vector<index_t> shape = p.input_shape(i, N);
    require(xs[i].size() == shape[0] * shape[1] * shape[2] * shape[3] && xs[i].shape(0) == N,
            "xs[" + std::to_string(i) + "]: expected shape (N, " + std::to_string(shape[1]) + ", " +
                std::to_string(shape[2]) + ", " + std::to_string(shape[3]) + ")");
    in_ptrs.push_back(xs[i].data());
  }
  const auto shapes = p.output_shapes(N);
  require(outs.size() == shapes.size(), "outs: expected one array per plan output");
  for (size_t i = 0; i < outs.size(); ++i) {
    index_t size = 1;
    for (index_t d : shapes[i]) size *= d;
    require(outs[i].size() == size, "outs[" + std::to_string(i) + "]: expected " + std::to_string(size) +
                                        " floats (got " + std::to_string(outs[i].size()) + ")");
    out_ptrs.push_back(outs[i].mutable_data());
  }
  return N;
}

}  // namespace convcore::bindings
