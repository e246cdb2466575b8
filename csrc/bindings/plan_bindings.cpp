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

std::vector<float*> check_io(const Plan& p, const std::vector<CArray>& xs, std::vector<CArray>& outs,
                             std::vector<const float*>& in_ptrs) {
  require(xs.size() == p.inputs().size(), "xs: expected one array per plan input");
  require(!xs.empty() && xs[0].ndim() >= 1 && xs[0].shape(0) >= 1, "xs: expected a batch of at least one");
  const index_t N = xs[0].shape(0);
  for (size_t i = 0; i < xs.size(); ++i) {
    const TensorDesc& d = p.tensor(p.inputs()[i]);
    require(xs[i].size() == N * d.C * d.H * d.W && xs[i].shape(0) == N,
            "xs[" + std::to_string(i) + "]: expected shape (N, " + std::to_string(d.C) + ", " + std::to_string(d.H) +
                ", " + std::to_string(d.W) + ")");
    in_ptrs.push_back(xs[i].data());
  }
  const auto shapes = output_shapes(p, N);
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
      .def("add_input", &Plan::add_input, py::arg("C"), py::arg("H"), py::arg("W"))
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
                      int algo, int scale, int mask, float mask_lo, float mask_hi) {
        check_tensor(p, x, "x");
        if (residual >= 0) check_tensor(p, residual, "residual");
        if (scale >= 0) check_tensor(p, scale, "scale");
        if (mask >= 0) check_tensor(p, mask, "mask");
        require(w.ndim() == 4, "weight: expected (K, C / groups, R, S)");
        require(algo >= 0 && algo <= static_cast<int>(ConvAlgo::winograd), "algo: unknown");
        ConvSpec s{w.shape(0), w.shape(1), w.shape(2), w.shape(3), stride[0], stride[1], dilation[0], dilation[1],
                   pads[0], pads[1], pads[2], pads[3], groups};
        check_len(bias, s.K, "bias");
        Epilogue e = epilogue(act, lo, hi, alpha);
        e.mask_lo = mask_lo, e.mask_hi = mask_hi;
        return plan_conv(p, name, x, s, w.data(), bias ? bias->data() : nullptr, e, residual,
                         static_cast<ConvAlgo>(algo), scale, mask);
      }, py::arg("name"), py::arg("x"), py::arg("weight").noconvert(), py::arg("bias").noconvert(), py::arg("stride"),
         py::arg("dilation"), py::arg("pads"), py::arg("groups"), py::arg("act"), py::arg("lo"), py::arg("hi"),
         py::arg("alpha"), py::arg("residual"), py::arg("algo"), py::arg("scale") = -1, py::arg("mask") = -1,
         py::arg("mask_lo") = 0.0f, py::arg("mask_hi") = 0.0f)
      .def("mbconv", [](Plan& p, const std::string& name, int x, const OptArray& we, const OptArray& be,
                        std::array<float, 4> ee, const CArray& wd, const OptArray& bd, Pair stride, Pair dilation,
                        Quad pads, std::array<float, 4> ed, const OptArray& wp, const OptArray& bp,
                        std::array<float, 4> ep, int residual) {
        check_tensor(p, x, "x");
        if (residual >= 0) check_tensor(p, residual, "residual");
        const index_t C = p.tensor(x).C;
        index_t E = C;
        if (we) {
          require(we->ndim() == 4 && we->shape(1) == C && we->shape(2) == 1 && we->shape(3) == 1,
                  "expand weight: expected (E, C, 1, 1)");
          E = we->shape(0);
          check_len(be, E, "expand bias");
        }
        require(wd.ndim() == 4 && wd.shape(0) == E && wd.shape(1) == 1, "depthwise weight: expected (E, 1, R, S)");
        check_len(bd, E, "depthwise bias");
        require(!wp || (wp->ndim() == 4 && wp->shape(1) == E && wp->shape(2) == 1 && wp->shape(3) == 1),
                "project weight: expected (K, E, 1, 1)");
        const index_t K = wp ? wp->shape(0) : E;
        check_len(bp, K, "project bias");
        ConvSpec dw{E, 1, wd.shape(2), wd.shape(3), stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[1],
                    pads[2], pads[3], E};
        auto epi = [](const std::array<float, 4>& a) { return epilogue(static_cast<int>(a[0]), a[1], a[2], a[3]); };
        return plan_mbconv(p, name, x, we ? we->data() : nullptr, be ? be->data() : nullptr, E, epi(ee), dw,
                           wd.data(), bd ? bd->data() : nullptr, epi(ed), wp ? wp->data() : nullptr,
                           bp ? bp->data() : nullptr, K,
                           epi(ep), residual);
      }, py::arg("name"), py::arg("x"), py::arg("we").noconvert(), py::arg("be").noconvert(), py::arg("ee"),
         py::arg("wd").noconvert(), py::arg("bd").noconvert(), py::arg("stride"), py::arg("dilation"),
         py::arg("pads"), py::arg("ed"), py::arg("wp").noconvert(), py::arg("bp").noconvert(), py::arg("ep"),
         py::arg("residual"))
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
      .def("run", [](Plan& p, std::vector<CArray> xs, std::vector<CArray> outs, int threads) {
        std::vector<const float*> in_ptrs;
        std::vector<float*> ptrs = check_io(p, xs, outs, in_ptrs);
        const index_t N = xs[0].shape(0);
        py::gil_scoped_release release;
        p.run(in_ptrs.data(), N, ptrs.data(), threads);
      }, py::arg("xs"), py::arg("outs"), py::arg("threads"))
      .def("profile", [](Plan& p, std::vector<CArray> xs, std::vector<CArray> outs, int threads, int repeats) {
        std::vector<const float*> in_ptrs;
        std::vector<float*> ptrs = check_io(p, xs, outs, in_ptrs);
        const index_t N = xs[0].shape(0);
        std::vector<ProfileEntry> prof;
        {
          py::gil_scoped_release release;
          prof = p.profile(in_ptrs.data(), N, ptrs.data(), threads, repeats);
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
