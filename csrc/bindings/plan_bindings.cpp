// Bindings of the compiled Plan (_core.Plan): a builder the Python compiler (python/convcore/plan) drives op by op,
// and run(), which executes the whole network with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/threads.h"
#include "plan/ops.h"
#include "plan/plan.h"

namespace py = pybind11;
using namespace convcore;

namespace {

using CArray = py::array_t<float, py::array::c_style>;
using OptArray = std::optional<CArray>;
using Pair = std::array<index_t, 2>;
using Quad = std::array<index_t, 4>;

Epilogue epilogue(int act, float lo, float hi, float alpha) {
  require(act >= 0 && act <= static_cast<int>(Act::hardsigmoid), "act: unknown activation code");
  Epilogue e;
  e.act = static_cast<Act>(act);
  e.lo = lo, e.hi = hi, e.alpha = alpha;
  return e;
}

void check_tensor(const Plan& p, int t, const char* name) {
  require(t >= 0 && t < p.num_tensors(), std::string(name) + ": unknown tensor id");
}

void check_len(const OptArray& a, index_t n, const char* name) {
  require(!a || (a->ndim() == 1 && a->shape(0) == n), std::string(name) + ": expected shape (" + std::to_string(n) + ",)");
}

// Outputs as (N, ...) shapes for batch N.
std::vector<std::vector<index_t>> output_shapes(const Plan& p, index_t N) {
  std::vector<std::vector<index_t>> out;
  for (const auto& [t, nchw] : p.outputs()) {
    const TensorDesc& d = p.tensor(t);
    if (nchw)
      out.push_back({N, d.C, d.H, d.W});
    else
      out.push_back({N, d.H * d.W * d.C});
  }
  return out;
}

std::vector<float*> check_io(const Plan& p, const CArray& x, std::vector<CArray>& outs) {
  require(x.ndim() == 4 && x.shape(1) == p.input_c() && x.shape(2) == p.input_h() && x.shape(3) == p.input_w() &&
              x.shape(0) >= 1,
          "x: expected shape (N, " + std::to_string(p.input_c()) + ", " + std::to_string(p.input_h()) + ", " +
              std::to_string(p.input_w()) + ")");
  const auto shapes = output_shapes(p, x.shape(0));
  require(outs.size() == shapes.size(), "outs: expected one array per plan output");
  std::vector<float*> ptrs;
  for (size_t i = 0; i < outs.size(); ++i) {
    index_t size = 1;
    for (index_t d : shapes[i]) size *= d;
    require(outs[i].size() == size, "outs: wrong output size");
    ptrs.push_back(outs[i].mutable_data());
  }
  return ptrs;
}

}  // namespace

void bind_plan(py::module_& m) {
  py::class_<Plan>(m, "Plan", "A compiled network (built by convcore.compile; not meant to be driven by hand).")
      .def(py::init([](const std::string& isa) { return new Plan(isa_from_name(isa)); }), py::arg("isa"))
      .def_property_readonly("isa", [](const Plan& p) { return std::string(isa_name(p.isa())); })
      .def("set_input", &Plan::set_input, py::arg("C"), py::arg("H"), py::arg("W"))
      .def("add_output", [](Plan& p, int t, bool nchw) { check_tensor(p, t, "t"); p.add_output(t, nchw); },
           py::arg("t"), py::arg("nchw"))
      .def("dims", [](const Plan& p, int t) {
        check_tensor(p, t, "t");
        const TensorDesc& d = p.tensor(t);
        return py::make_tuple(d.H, d.W, d.C);
      })
      .def("constant", [](Plan& p, const CArray& a) {
        require(a.ndim() == 3, "constant: expected an (H, W, C) array");
        return p.add_constant(a.shape(0), a.shape(1), a.shape(2), a.data());
      }, py::arg("nhwc").noconvert())
      .def("alias", [](Plan& p, int child, int parent, index_t c0) {
        check_tensor(p, child, "child");
        check_tensor(p, parent, "parent");
        p.alias(child, parent, c0);
      })
      .def("aliasable", [](const Plan& p, int t) { check_tensor(p, t, "t"); return p.aliasable(t); })
      .def("reshape", [](Plan& p, int t, index_t H, index_t W, index_t C) {
        check_tensor(p, t, "t");
        return p.reshape(t, H, W, C);
      })
      .def("conv", [](Plan& p, const std::string& name, int x, const CArray& w, const OptArray& bias, Pair stride,
                      Pair dilation, Quad pads, index_t groups, int act, float lo, float hi, float alpha, int residual,
                      int algo) {
        check_tensor(p, x, "x");
        if (residual >= 0) check_tensor(p, residual, "residual");
        require(w.ndim() == 4, "weight: expected (K, C / groups, R, S)");
        require(algo >= 0 && algo <= static_cast<int>(ConvAlgo::winograd), "algo: unknown");
        ConvSpec s{w.shape(0), w.shape(1), w.shape(2), w.shape(3), stride[0], stride[1], dilation[0], dilation[1],
                   pads[0], pads[1], pads[2], pads[3], groups};
        check_len(bias, s.K, "bias");
        return plan_conv(p, name, x, s, w.data(), bias ? bias->data() : nullptr, epilogue(act, lo, hi, alpha),
                         residual, static_cast<ConvAlgo>(algo));
      }, py::arg("name"), py::arg("x"), py::arg("weight").noconvert(), py::arg("bias").noconvert(), py::arg("stride"),
         py::arg("dilation"), py::arg("pads"), py::arg("groups"), py::arg("act"), py::arg("lo"), py::arg("hi"),
         py::arg("alpha"), py::arg("residual"), py::arg("algo"))
      .def("pool", [](Plan& p, const std::string& name, int x, bool is_max, Pair k, Pair s, Pair d, Quad pads,
                      Pair out, bool count_include_pad) {
        check_tensor(p, x, "x");
        return plan_pool(p, name, x, is_max, k[0], k[1], s[0], s[1], d[0], d[1], pads[0], pads[1], pads[2], pads[3],
                         out[0], out[1], count_include_pad);
      })
      .def("global_pool", [](Plan& p, const std::string& name, int x, bool is_max) {
        check_tensor(p, x, "x");
        return plan_global_pool(p, name, x, is_max);
      })
      .def("adaptive_pool", [](Plan& p, const std::string& name, int x, bool is_max, index_t oh, index_t ow) {
        check_tensor(p, x, "x");
        return plan_adaptive_pool(p, name, x, is_max, oh, ow);
      })
      .def("affine", [](Plan& p, const std::string& name, int x, const OptArray& scale, const OptArray& shift, int act,
                        float lo, float hi, float alpha) {
        check_tensor(p, x, "x");
        check_len(scale, p.tensor(x).C, "scale");
        check_len(shift, p.tensor(x).C, "shift");
        return plan_affine(p, name, x, scale ? scale->data() : nullptr, shift ? shift->data() : nullptr,
                           epilogue(act, lo, hi, alpha));
      }, py::arg("name"), py::arg("x"), py::arg("scale").noconvert(), py::arg("shift").noconvert(), py::arg("act"),
         py::arg("lo"), py::arg("hi"), py::arg("alpha"))
      .def("binary", [](Plan& p, const std::string& name, int a, int b, int op, int act, float lo, float hi,
                        float alpha) {
        check_tensor(p, a, "a");
        check_tensor(p, b, "b");
        require(op >= 0 && op <= static_cast<int>(BinaryOp::min), "op: unknown binary op");
        return plan_binary(p, name, a, b, static_cast<BinaryOp>(op), epilogue(act, lo, hi, alpha));
      })
      .def("copy_into", [](Plan& p, const std::string& name, int x, int y, index_t c0) {
        check_tensor(p, x, "x");
        check_tensor(p, y, "y");
        plan_copy_into(p, name, x, y, c0);
      })
      .def("tensor", [](Plan& p, index_t H, index_t W, index_t C) { return p.add_tensor(H, W, C); })
      .def("softmax", [](Plan& p, const std::string& name, int x, bool log) {
        check_tensor(p, x, "x");
        return plan_softmax(p, name, x, log);
      })
      .def("lrn", [](Plan& p, const std::string& name, int x, index_t size, float alpha, float beta, float k) {
        check_tensor(p, x, "x");
        return plan_lrn(p, name, x, size, alpha, beta, k);
      })
      .def("flatten_nchw", [](Plan& p, const std::string& name, int x) {
        check_tensor(p, x, "x");
        return plan_flatten_nchw(p, name, x);
      })
      .def("output_shapes", &output_shapes, py::arg("N"))
      .def("run", [](Plan& p, const CArray& x, std::vector<CArray> outs, int threads) {
        std::vector<float*> ptrs = check_io(p, x, outs);
        const index_t N = x.shape(0);
        py::gil_scoped_release release;
        p.run(x.data(), N, ptrs.data(), threads);
      }, py::arg("x").noconvert(), py::arg("outs"), py::arg("threads"))
      .def("profile", [](Plan& p, const CArray& x, std::vector<CArray> outs, int threads, int repeats) {
        std::vector<float*> ptrs = check_io(p, x, outs);
        const index_t N = x.shape(0);
        std::vector<ProfileEntry> prof;
        {
          py::gil_scoped_release release;
          prof = p.profile(x.data(), N, ptrs.data(), threads, repeats);
        }
        py::list out;
        for (const ProfileEntry& e : prof) out.append(py::make_tuple(e.name, e.kind, e.detail, e.flops, e.seconds));
        return out;
      }, py::arg("x").noconvert(), py::arg("outs"), py::arg("threads"), py::arg("repeats"))
      .def("ops", [](const Plan& p) {
        py::list out;
        for (const auto& op : p.ops()) out.append(py::make_tuple(op->name, op->kind, op->detail, op->flops_per_image));
        return out;
      })
      .def("arena_bytes", &Plan::arena_bytes, py::arg("N"))
      .def_property_readonly("weight_bytes", &Plan::weight_bytes);
}
