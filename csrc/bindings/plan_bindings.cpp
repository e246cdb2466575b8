// Bindings of the compiled CPU Plan (_core.Plan): the builder methods every backend shares (plan_binder.h), and run(),
// which executes the whole network with the GIL released.
#include "bindings/plan_binder.h"
#include "plan/plan.h"

namespace py = pybind11;
using namespace convcore;
using namespace convcore::bindings;

void bind_plan(py::module_& m) {
  py::class_<Plan> plan(m, "Plan", "A compiled network (built by convcore.compile; not meant to be driven by hand).");
  plan.def(py::init([](const std::string& isa) { return new Plan(isa_from_name(isa)); }), py::arg("isa"))
      .def_property_readonly("isa", [](const Plan& p) { return std::string(isa_name(p.isa())); });
  bind_builder(plan);
  plan.def("attention", &Plan::attention, py::arg("name"), py::arg("x"), py::arg("heads"), py::arg("scale"));
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
