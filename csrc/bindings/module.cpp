// PYBIND11_MODULE(_core): thin bindings. Python (convcore/_validate.py) checks arguments and allocates outputs; these
// functions re-check the sizes they rely on (a direct _core caller must not be able to read out of bounds), take
// C-contiguous float32 arrays without conversion, and release the GIL for the compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "core/threads.h"
#include "kernels/bf16.h"
#include "kernels/int8.h"
#include "kernels/kernels.h"
#include "kernels/machine.h"
#include "ops/activation/activation.h"
#include "ops/batchnorm/batchnorm.h"
#include "ops/conv2d/conv2d.h"
#include "ops/conv_transpose/conv_transpose.h"
#include "ops/eltwise/eltwise.h"
#include "ops/instancenorm/instancenorm.h"
#include "ops/linear/linear.h"
#include "ops/lrn/lrn.h"
#include "ops/matmul/matmul.h"
#include "ops/pool2d/pool2d.h"
#include "ops/reduce/reduce.h"
#include "ops/softmax/softmax.h"
#include "ops/tensor/tensor.h"

namespace py = pybind11;
using namespace convcore;
using namespace convcore::bindings;

namespace {

using IArray = py::array_t<int64_t, py::array::c_style>;
using DArray = py::array_t<double, py::array::c_style>;

const float* data_or_null(const OptArray& a) { return a ? a->data() : nullptr; }

float* out_ptr(CArray& out) { return out.mutable_data(); }  // throws if read-only

// The output size comes from `out` (Python computed it); conv2d_check refuses one that does not follow.
void conv2d_py(const CArray& x, const CArray& w, const OptArray& bias, CArray& out, Pair stride, Pair dilation,
               Quad padding, index_t groups) {
  require_ndim(x, 4, "x");
  require_ndim(w, 4, "weight");
  require_ndim(out, 4, "out");
  require(groups >= 1, "groups: expected >= 1");
  Conv2dShape s{dim(x, 0), dim(x, 1), dim(x, 2), dim(x, 3), dim(w, 0), dim(w, 2), dim(w, 3), dim(out, 2), dim(out, 3),
                stride[0], stride[1], dilation[0], dilation[1], padding[0], padding[1], padding[2], padding[3], groups};
  conv2d_check(s);
  require(dim(w, 1) * groups == s.C, "weight: in_channels / groups mismatch");
  require_shape(out, {s.N, s.K, s.OH, s.OW}, "out");
  if (bias) require_shape(*bias, {s.K}, "bias");
  const float* b = data_or_null(bias);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  conv2d(s, x.data(), w.data(), b, y);
}

Pool2dShape pool_shape(const CArray& x, const CArray& out, Pair kernel, Pair stride, Pair dilation, Quad padding) {
  require_ndim(x, 4, "x");
  require_ndim(out, 4, "out");
  Pool2dShape s{dim(x, 0), dim(x, 1), dim(x, 2), dim(x, 3), dim(out, 2), dim(out, 3), kernel[0], kernel[1], stride[0],
                stride[1], dilation[0], dilation[1], padding[0], padding[1], padding[2], padding[3]};
  pool2d_check(s);
  require(dim(out, 0) == s.N && dim(out, 1) == s.C, "out: batch / channel mismatch");
  return s;
}

void max_pool2d_py(const CArray& x, CArray& out, Pair kernel, Pair stride, Pair dilation, Quad padding) {
  const Pool2dShape s = pool_shape(x, out, kernel, stride, dilation, padding);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  max_pool2d(s, x.data(), y);
}

void avg_pool2d_py(const CArray& x, CArray& out, Pair kernel, Pair stride, Quad padding, bool count_include_pad) {
  const Pool2dShape s = pool_shape(x, out, kernel, stride, {1, 1}, padding);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  avg_pool2d(s, count_include_pad, x.data(), y);
}

void adaptive_pool2d_py(const CArray& x, CArray& out, bool is_max) {
  require_ndim(x, 4, "x");
  require_shape(out, {dim(x, 0), dim(x, 1), dim(out, 2), dim(out, 3)}, "out");
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  adaptive_pool2d(is_max, dim(x, 0), dim(x, 1), dim(x, 2), dim(x, 3), dim(out, 2), dim(out, 3), x.data(), y);
}

void batch_norm_py(const CArray& x, const CArray& mean, const CArray& var, const OptArray& weight,
                   const OptArray& bias, double eps, CArray& out) {
  require(x.ndim() >= 2, "x: expected at least 2 dimensions");
  const index_t N = dim(x, 0), C = dim(x, 1), inner = x.size() / std::max<index_t>(1, N * C);
  for (const CArray* a : {&mean, &var}) require_shape(*a, {C}, "running_mean / running_var");
  if (weight) require_shape(*weight, {C}, "weight");
  if (bias) require_shape(*bias, {C}, "bias");
  require(out.size() == x.size(), "out: size mismatch");
  const float *wp = data_or_null(weight), *bp = data_or_null(bias);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  batch_norm(N, C, inner, x.data(), mean.data(), var.data(), wp, bp, eps, y);
}

void unary_py(const CArray& x, CArray& out, Act act, float alpha, float beta) {
  require(out.size() == x.size(), "out: size mismatch");
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  unary(Epilogue{act, alpha, beta}, x.data(), y, x.size(), active_isa());
}

void softmax_py(const CArray& x, CArray& out, int axis, bool log) {
  require(axis >= 0 && axis < x.ndim(), "axis: out of range");
  require(out.size() == x.size(), "out: size mismatch");
  index_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= dim(x, d);
  for (int d = axis + 1; d < x.ndim(); ++d) inner *= dim(x, d);
  const index_t len = dim(x, axis);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  if (x.size() > 0) softmax(outer, len, inner, log, x.data(), y);
}

void lrn_py(const CArray& x, CArray& out, index_t size, index_t before, index_t after, double alpha, double beta,
            double k) {
  require(x.ndim() >= 3, "x: expected at least 3 dimensions");
  require(out.size() == x.size(), "out: size mismatch");
  const index_t N = dim(x, 0), C = dim(x, 1), inner = x.size() / std::max<index_t>(1, N * C);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  lrn(N, C, inner, size, before, after, alpha, beta, k, x.data(), y);
}

void linear_py(const CArray& x, const CArray& w, const OptArray& bias, CArray& out) {
  require_ndim(x, 2, "x");
  require_ndim(w, 2, "weight");
  const index_t M = dim(x, 0), K = dim(x, 1), N = dim(w, 0);
  require(dim(w, 1) == K, "weight: in_features mismatch");
  require_shape(out, {M, N}, "out");
  if (bias) require_shape(*bias, {N}, "bias");
  const float* b = data_or_null(bias);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  linear(M, N, K, x.data(), w.data(), b, y);
}

// a and b: float32 views already broadcast to out's shape (any strides, 0 for broadcast axes).
void binary_py(const py::array_t<float>& a, const py::array_t<float>& b, CArray& out, BinaryOp op) {
  const int nd = static_cast<int>(out.ndim());
  require(a.ndim() == nd && b.ndim() == nd, "a, b: expected arrays broadcast to the output shape");
  std::vector<index_t> shape(nd), as(nd), bs(nd);
  for (int d = 0; d < nd; ++d) {
    shape[d] = dim(out, d);
    require(dim(a, d) == shape[d] && dim(b, d) == shape[d], "a, b: expected arrays broadcast to the output shape");
    require(a.strides(d) % sizeof(float) == 0 && b.strides(d) % sizeof(float) == 0, "a, b: unaligned strides");
    as[d] = a.strides(d) / static_cast<index_t>(sizeof(float));
    bs[d] = b.strides(d) / static_cast<index_t>(sizeof(float));
  }
  float* y = out_ptr(out);
  if (out.size() == 0) return;
  py::gil_scoped_release release;
  binary(op, shape, a.data(), as, b.data(), bs, y);
}

// c, a, b: float32 views already broadcast to out's shape (numpy's broadcast_to: stride 0 on broadcast axes).
void where_py(const py::array_t<float>& c, const py::array_t<float>& a, const py::array_t<float>& b, CArray& out) {
  const int nd = static_cast<int>(out.ndim());
  std::vector<index_t> shape(nd), cs(nd), as(nd), bs(nd);
  for (const py::array_t<float>* v : {&c, &a, &b}) require(v->ndim() == nd, "c, a, b: expected arrays broadcast to out");
  for (int d = 0; d < nd; ++d) {
    shape[d] = dim(out, d);
    index_t* strides[] = {&cs[d], &as[d], &bs[d]};
    const py::array_t<float>* arrays[] = {&c, &a, &b};
    for (int k = 0; k < 3; ++k) {
      require(dim(*arrays[k], d) == shape[d] && arrays[k]->strides(d) % static_cast<py::ssize_t>(sizeof(float)) == 0,
              "c, a, b: expected arrays broadcast to out");
      *strides[k] = arrays[k]->strides(d) / static_cast<index_t>(sizeof(float));
    }
  }
  float* y = out_ptr(out);
  if (out.size() == 0) return;
  py::gil_scoped_release release;
  where(shape, c.data(), cs, a.data(), as, b.data(), bs, y);
}

void concat_py(const std::vector<CArray>& xs, CArray& out, int axis) {
  require(!xs.empty(), "xs: expected at least one array");
  const int nd = static_cast<int>(out.ndim());
  require(axis >= 0 && axis < nd, "axis: out of range");
  index_t outer = 1, inner = 1, total = 0;
  for (int d = 0; d < axis; ++d) outer *= dim(out, d);
  for (int d = axis + 1; d < nd; ++d) inner *= dim(out, d);
  std::vector<const float*> ptrs;
  std::vector<index_t> chunk;
  for (const CArray& x : xs) {
    require(x.ndim() == nd, "xs: rank mismatch");
    for (int d = 0; d < nd; ++d) require(d == axis || dim(x, d) == dim(out, d), "xs: shape mismatch");
    total += dim(x, axis);
    ptrs.push_back(x.data());
    chunk.push_back(dim(x, axis) * inner);
  }
  require(total == dim(out, axis), "out: concat axis length mismatch");
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  concat(outer, ptrs, chunk, y);
}

// offsets[d]: int64 element offsets into x per output index along dim d (-1: fill). Every reachable sum of offsets is
// checked against x's size before the kernel reads anything.
void index_copy_py(const CArray& x, CArray& out, const std::vector<IArray>& offsets, float fill) {
  const int nd = static_cast<int>(out.ndim());
  require(static_cast<int>(offsets.size()) == nd, "offsets: expected one table per output dimension");
  std::vector<index_t> shape(nd);
  std::vector<const index_t*> tables(nd);
  index_t reach = 0;
  bool reads = true;
  for (int d = 0; d < nd; ++d) {
    shape[d] = dim(out, d);
    require(offsets[d].ndim() == 1 && dim(offsets[d], 0) == shape[d], "offsets: expected one entry per output index");
    const int64_t* t = offsets[d].data();
    index_t most = -1;
    for (index_t i = 0; i < shape[d]; ++i) {
      require(t[i] >= -1, "offsets: expected offsets >= -1");
      most = std::max<index_t>(most, t[i]);
    }
    if (most < 0 && shape[d] > 0) reads = false;  // every output along this dim is filled
    reach += std::max<index_t>(most, 0);
    tables[d] = t;
  }
  if (out.size() == 0) return;
  require(!reads || reach < x.size(), "offsets: out of the input's range");
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  index_copy(shape, tables, x.data(), fill, y);
}

void resample_axis_py(const CArray& x, CArray& out, int axis, const IArray& index, const DArray& weights, float fill) {
  const int nd = static_cast<int>(x.ndim());
  require(axis >= 0 && axis < nd && out.ndim() == nd, "axis: out of range");
  index_t outer = 1, inner = 1;
  for (int d = 0; d < nd; ++d) {
    if (d == axis) continue;
    require(dim(x, d) == dim(out, d), "out: shape mismatch off the resampled axis");
    (d < axis ? outer : inner) *= dim(x, d);
  }
  const index_t in_len = dim(x, axis), out_len = dim(out, axis);
  require(index.ndim() == 2 && dim(index, 0) == out_len && weights.ndim() == 2 && dim(weights, 0) == out_len &&
              dim(weights, 1) == dim(index, 1) && dim(index, 1) >= 1,
          "index / weights: expected (out_len, taps) tables");
  const index_t taps = dim(index, 1);
  const int64_t* idx = index.data();
  for (index_t j = 0; j < out_len; ++j) {
    const bool fills = idx[j * taps] == -1;
    for (index_t t = 0; t < taps; ++t)
      require(fills ? idx[j * taps + t] == -1 : (idx[j * taps + t] >= 0 && idx[j * taps + t] < in_len),
              "index: out of the input's range");
  }
  float* y = out_ptr(out);
  if (out.size() == 0) return;
  py::gil_scoped_release release;
  resample_axis(outer, in_len, inner, out_len, taps, idx, weights.data(), fill, x.data(), y);
}

void reduce_py(const CArray& x, CArray& out, const std::vector<int>& axes, const std::string& op) {
  const int nd = static_cast<int>(x.ndim());
  std::vector<bool> reduced(nd, false);
  std::vector<index_t> shape(nd);
  index_t kept = 1;
  for (int a : axes) {
    require(a >= 0 && a < nd && !reduced[a], "axes: out of range or repeated");
    reduced[a] = true;
  }
  for (int d = 0; d < nd; ++d) {
    shape[d] = dim(x, d);
    if (!reduced[d]) kept *= shape[d];
  }
  require(out.size() == kept, "out: size mismatch");
  const ReduceOp r = reduce_op_named(op);
  float* y = out_ptr(out);
  if (kept == 0) return;
  py::gil_scoped_release release;
  reduce(shape, reduced, r, x.data(), y);
}

// a_offsets / b_offsets: where each of the `batch` products' A (M x K) and B (K x N) start.
void matmul_py(const CArray& a, const CArray& b, CArray& out, index_t M, index_t N, index_t K, const IArray& a_offsets,
               const IArray& b_offsets) {
  const index_t batch = a_offsets.size();
  require(M >= 1 && N >= 1 && K >= 0 && b_offsets.size() == batch && out.size() == batch * M * N,
          "matmul: inconsistent sizes");
  for (index_t i = 0; i < batch; ++i) {
    const index_t ao = a_offsets.data()[i], bo = b_offsets.data()[i];
    require(ao >= 0 && ao + M * K <= a.size() && bo >= 0 && bo + K * N <= b.size(), "matmul: offsets out of range");
  }
  float* y = out_ptr(out);
  if (batch == 0) return;
  py::gil_scoped_release release;
  matmul(batch, M, N, K, a.data(), a_offsets.data(), b.data(), b_offsets.data(), y);
}

// pads: the (top, left) begin pads (any sign); the output size comes from out.
void conv_transpose2d_py(const CArray& x, const CArray& w, const OptArray& bias, CArray& out, Pair stride,
                         Pair dilation, Pair pads, index_t groups) {
  require_ndim(x, 4, "x");
  require_ndim(w, 4, "weight");
  require_ndim(out, 4, "out");
  ConvTranspose2dShape s{dim(x, 0), dim(x, 1), dim(x, 2), dim(x, 3), dim(out, 1), dim(w, 2), dim(w, 3), dim(out, 2),
                         dim(out, 3), stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[1], groups};
  conv_transpose2d_check(s);
  require(dim(w, 0) == s.C && dim(w, 1) * groups == s.K, "weight: expected shape (C_in, C_out / groups, kH, kW)");
  require(dim(out, 0) == s.N, "out: batch mismatch");
  if (bias) require_shape(*bias, {s.K}, "bias");
  const float* b = data_or_null(bias);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  conv_transpose2d(s, x.data(), w.data(), b, y);
}

void instance_norm_py(const CArray& x, const OptArray& weight, const OptArray& bias, double eps, CArray& out) {
  require(x.ndim() >= 3, "x: expected at least 3 dimensions");
  const index_t N = dim(x, 0), C = dim(x, 1), inner = x.size() / std::max<index_t>(1, N * C);
  require(inner >= 1, "x: expected non-empty planes");
  if (weight) require_shape(*weight, {C}, "weight");
  if (bias) require_shape(*bias, {C}, "bias");
  require(out.size() == x.size(), "out: size mismatch");
  const float *wp = data_or_null(weight), *bp = data_or_null(bias);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  instance_norm(N, C, inner, x.data(), wp, bp, eps, y);
}

void lp_pool2d_py(const CArray& x, CArray& out, Pair kernel, Pair stride, Pair dilation, Quad padding, double p) {
  const Pool2dShape s = pool_shape(x, out, kernel, stride, dilation, padding);
  float* y = out_ptr(out);
  py::gil_scoped_release release;
  lp_pool2d(s, p, x.data(), y);
}

py::dict config() {
  const CpuFeatures& f = cpu_features();
  py::dict cpu;
  cpu["brand"] = f.brand;
  for (auto [name, on] : {std::pair<const char*, bool>{"avx2", f.avx2}, {"fma", f.fma}, {"avx512f", f.avx512f},
                          {"avx512bw", f.avx512bw}, {"avx512dq", f.avx512dq}, {"avx512vl", f.avx512vl},
                          {"avx512_bf16", f.avx512_bf16}, {"amx_tile", f.amx_tile}, {"amx_int8", f.amx_int8},
                          {"amx_bf16", f.amx_bf16}, {"avx_vnni", f.avx_vnni}, {"avx512_vnni", f.avx512_vnni}})
    cpu[name] = on;
  py::list compiled, available;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) compiled.append(isa_name(isa));
  for (Isa isa : available_isas()) available.append(isa_name(isa));
  py::dict d;
  d["version"] = CONVCORE_VERSION;
  d["compiled_isas"] = compiled;
  d["available_isas"] = available;
  d["isa"] = isa_name(active_isa());
  const Kernels& k = kernels_for(active_isa());
  d["conv_kernel"] = active_isa() == Isa::scalar
                         ? std::string("reference (direct loops)")
                         : std::string("f32 register tiles, ") + k.isa + " (" + std::to_string(k.lanes) + " lanes)";
  py::dict int8;  // the int8 kernels each usable ISA runs (kernels/int8.h)
  for (Isa isa : available_isas()) int8[isa_name(isa)] = int8_kernels_for(isa).name;
  d["int8_kernels"] = int8;
  py::dict bf16;  // the bf16 convolution each usable ISA runs (kernels/bf16.h), or None
  for (Isa isa : available_isas()) {
    const Bf16Kernels* k = bf16_kernels_for(isa);
    bf16[isa_name(isa)] = k ? py::object(py::str(k->name)) : py::object(py::none());
  }
  d["bf16_kernels"] = bf16;
  d["num_threads"] = num_threads();
  d["thread_pool"] = "convcore (" + std::to_string(ThreadPool::instance().workers()) + " workers started)";
  d["cpu"] = cpu;
  d["compiler"] = __VERSION__;
  return d;
}

}  // namespace

void bind_types(py::module_& m);  // types.cpp
void bind_plan(py::module_& m);   // plan_bindings.cpp
void bind_grad(py::module_& m);   // grad_bindings.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "convcore native kernels (use convcore.functional, which validates arguments first)";
  // std::invalid_argument already maps to ValueError in pybind11.
  bind_types(m);
  m.def("conv2d", &conv2d_py, py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias").noconvert(),
        py::arg("out").noconvert(), py::arg("stride"), py::arg("dilation"), py::arg("padding"), py::arg("groups"));
  m.def("max_pool2d", &max_pool2d_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("kernel"),
        py::arg("stride"), py::arg("dilation"), py::arg("padding"));
  m.def("avg_pool2d", &avg_pool2d_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"));
  m.def("adaptive_pool2d", &adaptive_pool2d_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("is_max"));
  m.def("batch_norm", &batch_norm_py, py::arg("x").noconvert(), py::arg("running_mean").noconvert(),
        py::arg("running_var").noconvert(), py::arg("weight").noconvert(), py::arg("bias").noconvert(), py::arg("eps"),
        py::arg("out").noconvert());
  m.def("unary", &unary_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("act"),
        py::arg("alpha") = 0.0f, py::arg("beta") = 0.0f);
  m.def("softmax", &softmax_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("axis"), py::arg("log"));
  m.def("lrn", &lrn_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("size"), py::arg("before"),
        py::arg("after"), py::arg("alpha"), py::arg("beta"), py::arg("k"));
  m.def("linear", &linear_py, py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias").noconvert(),
        py::arg("out").noconvert());
  m.def("binary", &binary_py, py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("out").noconvert(), py::arg("op"));
  m.def("where", &where_py, py::arg("c").noconvert(), py::arg("a").noconvert(), py::arg("b").noconvert(),
        py::arg("out").noconvert());
  m.def("concat", &concat_py, py::arg("xs"), py::arg("out").noconvert(), py::arg("axis"));
  m.def("index_copy", &index_copy_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("offsets"),
        py::arg("fill") = 0.0f);
  m.def("resample_axis", &resample_axis_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("axis"),
        py::arg("index").noconvert(), py::arg("weights").noconvert(), py::arg("fill") = 0.0f);
  m.def("reduce", &reduce_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("axes"), py::arg("op"));
  m.def("matmul", &matmul_py, py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("out").noconvert(),
        py::arg("M"), py::arg("N"), py::arg("K"), py::arg("a_offsets").noconvert(), py::arg("b_offsets").noconvert());
  m.def("conv_transpose2d", &conv_transpose2d_py, py::arg("x").noconvert(), py::arg("weight").noconvert(),
        py::arg("bias").noconvert(), py::arg("out").noconvert(), py::arg("stride"), py::arg("dilation"),
        py::arg("pads"), py::arg("groups"));
  m.def("instance_norm", &instance_norm_py, py::arg("x").noconvert(), py::arg("weight").noconvert(),
        py::arg("bias").noconvert(), py::arg("eps"), py::arg("out").noconvert());
  m.def("lp_pool2d", &lp_pool2d_py, py::arg("x").noconvert(), py::arg("out").noconvert(), py::arg("kernel"),
        py::arg("stride"), py::arg("dilation"), py::arg("padding"), py::arg("p"));

  m.def("config", &config, "Build, CPU and runtime facts as a dict.");
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.push_back(isa_name(isa));
    return out;
  });
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); }, py::arg("name"));
  m.def("get_num_threads", &num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.attr("MAX_THREADS") = kMaxThreads;
  m.def("set_grain_scale", &set_grain_scale, py::arg("scale"),
        "Testing hook: 0 makes every op use all threads however small (default 1).");
  m.def("measure_fma_peak", [](int threads, double seconds) {
    require(threads >= 1 && threads <= 4096, "threads: expected 1..4096");
    py::gil_scoped_release release;
    return measure_fma_peak(threads, seconds);
  }, py::arg("threads"), py::arg("seconds") = 0.3, "GFLOP/s of an fp32 FMA loop at the active ISA.");
  m.def("measure_bandwidth", [](int threads, double megabytes, int repeats) {
    require(threads >= 1 && threads <= 4096 && megabytes > 0 && megabytes < 1e5, "bad arguments");
    py::gil_scoped_release release;
    return measure_bandwidth(threads, megabytes, repeats);
  }, py::arg("threads"), py::arg("megabytes") = 512.0, py::arg("repeats") = 5,
     "GB/s (bytes read + written) of a large copy.");
  bind_plan(m);
  bind_grad(m);
}
