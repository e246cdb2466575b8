// Bindings of the compiled CPU Plan (_core.Plan): the builder methods every backend shares (plan_binder.h), and run(),
// which executes the whole network with the GIL released.
#include "bindings/plan_binder.h"
#include "plan/plan.h"

namespace py = pybind11;
using namespace convcore;
using namespace convcore::bindings;

void bind_plan(py::module_& m) {
  py::class_<Plan> plan(m, "Plan", "A compiled network (built by convcore.compile; not meant to be driven by hand).");
  plan.def(py::init([](const std::string& isa, bool bf16) { return new Plan(isa_from_name(isa), bf16); }),
           py::arg("isa"), py::arg("bf16") = false)
      .def_property_readonly("isa", [](const Plan& p) { return std::string(isa_name(p.isa())); });
  bind_builder(plan);
  plan.def("attention", [](Plan& p, const std::string& name, int x, index_t heads, float scale, index_t length,
                           const OptPlanArray& bias) {
        index_t windows = 1, bias_heads = 1;
        if (bias) {
          require(bias->ndim() == 4 && bias->shape(2) == length && bias->shape(3) == length && bias->shape(0) >= 1 &&
                      (bias->shape(1) == 1 || bias->shape(1) == heads),
                  "bias: expected (windows, 1 or heads, length, length)");
          windows = bias->shape(0), bias_heads = bias->shape(1);
        }
        return p.attention(name, x, heads, scale, length, data_of(bias), windows, bias_heads);
      }, py::arg("name"), py::arg("x"), py::arg("heads"), py::arg("scale"), py::arg("length") = 0,
      py::arg("bias").noconvert() = py::none());
  plan.def("reduce", [](Plan& p, const std::string& name, int x, const std::string& op) {
        return p.reduce(name, x, reduce_op_named(op));
      }, py::arg("name"), py::arg("x"), py::arg("op"));
  plan.def("where", &Plan::where, py::arg("name"), py::arg("condition"), py::arg("a"), py::arg("b"));
  plan.def("lstm", [](Plan& p, const std::string& name, int gates, const PlanArray& r, const OptPlanArray& peep,
                      const OptPlanArray& h0, const OptPlanArray& c0, bool reverse, int output) {
        require(r.ndim() == 3 && r.shape(0) >= 1 && r.shape(2) >= 1 && r.shape(1) == 4 * r.shape(2),
                "r: expected (directions, 4 * hidden, hidden)");
        const index_t D = r.shape(0), H = r.shape(2);
        check_len(peep, D * 3 * H, "p");
        check_len(h0, D * H, "initial_h");
        check_len(c0, D * H, "initial_c");
        const LstmWeights lw{D, H, reverse, r.data(), data_of(peep), data_of(h0), data_of(c0)};
        return p.lstm(name, gates, lw, output);
      }, py::arg("name"), py::arg("gates"), py::arg("r").noconvert(), py::arg("p").noconvert(),
         py::arg("initial_h").noconvert(), py::arg("initial_c").noconvert(), py::arg("reverse"), py::arg("output"));
  plan.def("qconv", [](Plan& p, const std::string& name, int x, const py::array_t<int8_t, py::array::c_style>& w,
                       const PlanArray& w_scale, const OptPlanArray& bias, const py::handle& spec,
                       const py::handle& epilogue, int residual, float in_scale, int in_zero, bool in_uint8,
                       const std::array<float, 3>& sum_grid, const std::array<float, 3>& out_grid, bool x_bytes,
                       const std::array<float, 3>& bytes) {
        const ConvSpec s = to_conv_spec(spec, w);
        check_len(w_scale, s.K, "weight_scale");
        check_len(bias, s.K, "bias");
        const QuantParams in{in_scale, in_zero, in_uint8 ? 0 : -128, in_uint8 ? 255 : 127, in_uint8 ? 0 : 128};
        auto grid = [](const std::array<float, 3>& g) {  // (scale, zero point, uint8): low = qmin - zero point
          return FakeQuant{g[0], (g[2] != 0.0f ? 0.0f : -128.0f) - g[1], g[0] > 0.0f ? 1.0f / g[0] : 0.0f};
        };
        ByteStore store;  // (scale, zero point, uint8) of the next qconv's input, or zeros
        if (bytes[0] != 0.0f) {
          const bool u8 = bytes[2] != 0.0f;
          store = ByteStore{1.0f / bytes[0], static_cast<int>(bytes[1]), u8 ? 0 : -128, u8 ? 255 : 127, u8 ? 0 : 128};
        }
        const QuantEpilogue qe{to_epilogue(epilogue), grid(sum_grid), grid(out_grid), store};
        return p.qconv(name, x, s, w.data(), w_scale.data(), data_of(bias), in, qe, residual, x_bytes);
      }, py::arg("name"), py::arg("x"), py::arg("weight").noconvert(), py::arg("weight_scale").noconvert(),
         py::arg("bias").noconvert(), py::kw_only(), py::arg("spec"), py::arg("epilogue") = py::none(),
         py::arg("residual") = -1, py::arg("in_scale"), py::arg("in_zero"), py::arg("in_uint8"),
         py::arg("sum_grid") = std::array<float, 3>{0, 0, 0}, py::arg("out_grid") = std::array<float, 3>{0, 0, 0},
         py::arg("x_bytes") = false, py::arg("bytes") = std::array<float, 3>{0, 0, 0},
         "An int8 convolution (QDQ semantics): x quantized per tensor, int8 weights with per-channel scales, then "
         "the output's grid, a residual add, the activation and the result's grid (each grid (scale, zero point, "
         "is uint8); scale 0: none); x_bytes: x is another qconv's bytes; bytes: store the result as bytes on that grid "
         "for the next qconv.");
  plan.def("run", [](Plan& p, std::vector<PlanArray> xs, std::vector<PlanArray> outs, int threads) {
        std::vector<const float*> in_ptrs;
        std::vector<float*> out_ptrs;
        const index_t N = check_run_arrays(p, xs, outs, in_ptrs, out_ptrs);
        py::gil_scoped_release release;
        p.run(in_ptrs.data(), N, out_ptrs.data(), threads);
      }, py::arg("xs"), py::arg("outs"), py::arg("threads"))
      .def("profile", [](Plan& p, std::vector<PlanArray> xs, std::vector<PlanArray> outs, int threads, int repeats) {
        std::vector<const float*> in_ptrs;
        std::vector<float*> out_ptrs;
        const index_t N = check_run_arrays(p, xs, outs, in_ptrs, out_ptrs);
        std::vector<ProfileEntry> prof;
        {
          py::gil_scoped_release release;
          prof = p.profile(in_ptrs.data(), N, out_ptrs.data(), threads, repeats);
        }
        py::list out;
        for (const ProfileEntry& e : prof) out.append(py::make_tuple(e.name, e.kind, e.detail, e.flops, e.seconds));
        return out;
      }, py::arg("xs"), py::arg("outs"), py::arg("threads"), py::arg("repeats"),
         "Per-op (name, kernel, shapes, FLOPs, seconds): each op's best time over `repeats` runs.");
}
