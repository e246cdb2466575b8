// PYBIND11_MODULE(_cuda): the CUDA backend, a module of its own so that convcore._core never links the CUDA runtime.
// The runtime is linked in statically and loads the driver (libcuda) only when first used: importing this module on
// a machine without a driver or a GPU works, and status() says which is missing.
//
//  - status(), device_info(i): what the driver and the GPUs are;
//  - DeviceArray: float32 device memory owned by convcore, exported through __cuda_array_interface__ and DLPack
//    (CuPy, PyTorch, JAX, numba take it without a copy);
//  - Plan: the GPU builder with _core.Plan's methods and signatures (one binder: plan_binder.h), so
//    python/convcore/plan/lower.py drives either,
//    run() on host (numpy) arrays and run_device() on device arrays (DeviceArray, __cuda_array_interface__ or
//    DLPack producers), without a host round trip.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings/plan_binder.h"
#include "core/common.h"
#include "cuda/plan.h"

namespace py = pybind11;
using namespace convcore::cuda;
using namespace convcore::bindings;
using convcore::require;

#ifndef CONVCORE_CUDA_ARCHITECTURES
#define CONVCORE_CUDA_ARCHITECTURES "unknown"
#endif

namespace {


// ------------------------------------------------------------------------------------------------ status
std::string version_text(int v) { return v > 0 ? std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) : ""; }

struct Status {
  int count = 0;
  std::string reason;  // empty when a GPU is usable
};

Status status() {
  Status s;
  const cudaError_t err = cudaGetDeviceCount(&s.count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    s.count = 0;
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    if (err == cudaErrorInsufficientDriver)
      s.reason = "no GPU: no NVIDIA driver was found (libcuda.so.1 is missing or older than the CUDA " +
                 version_text(runtime) + " runtime this build needs)";
    else if (err == cudaErrorNoDevice)
      s.reason = "no GPU: the NVIDIA driver found no CUDA-capable device";
    else
      s.reason = std::string("no GPU: CUDA initialisation failed: ") + cudaGetErrorName(err) + " (" +
                 cudaGetErrorString(err) + ")";
  } else if (s.count == 0) {
    s.reason = "no GPU: the NVIDIA driver found no CUDA-capable device";
  }
  return s;
}

py::dict status_dict() {
  const Status s = status();
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  cudaGetLastError();
  py::dict d;
  d["available"] = s.count > 0;
  d["reason"] = s.reason.empty() ? py::none() : py::object(py::str(s.reason));
  d["device_count"] = s.count;
  d["driver_version"] = driver > 0 ? py::object(py::str(version_text(driver))) : py::none();
  d["runtime_version"] = version_text(runtime);
  d["architectures"] = CONVCORE_CUDA_ARCHITECTURES;
#ifdef CONVCORE_CUDA_EMULATE
  d["emulated"] = true;
  d["emulator_thread_order"] = emu::thread_order();
#else
  d["emulated"] = false;
#endif
  return d;
}

void require_gpu(int device) {
  const Status s = status();
  if (s.count == 0) throw CudaError(s.reason);
  require(device >= 0 && device < s.count, "device: expected 0 <= device < " + std::to_string(s.count) + " (got " +
                                               std::to_string(device) + ")");
}

py::dict device_info(int device) {
  require_gpu(device);
  cudaDeviceProp p;
  CC_CHECK(cudaGetDeviceProperties(&p, device));
  py::dict d;
  d["index"] = device;
  d["name"] = std::string(p.name);
  d["compute_capability"] = py::make_tuple(p.major, p.minor);
  d["memory_bytes"] = static_cast<std::size_t>(p.totalGlobalMem);
  d["multiprocessors"] = p.multiProcessorCount;
  return d;
}

Precision precision_from(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  throw std::invalid_argument("precision: expected 'fp32', 'tf32' or 'bf16' (got '" + name + "')");
}

const char* precision_text(Precision p) { return p == Precision::fp32 ? "fp32" : p == Precision::tf32 ? "tf32" : "bf16"; }

// ------------------------------------------------------------------------------------------------ DLPack
// The DLPack ABI (dlpack.h, v0.8: the unversioned "dltensor" capsule every producer and consumer supports).
enum DLDeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // kDLFloat = 2
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null: compact C order
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// ------------------------------------------------------------------------------------------- device arrays
class DeviceArray {
 public:
  DeviceArray(std::vector<index_t> shape, int device) : shape_(std::move(shape)), device_(device) {
    index_t n = 1;
    for (index_t d : shape_) {
      require(d >= 0, "shape: dimensions must be non-negative");
      n *= d;
    }
    size_ = n;
    if (n > 0) buffer_ = std::make_shared<DeviceBuffer>(static_cast<std::size_t>(n) * 4, device);
  }
  const std::vector<index_t>& shape() const { return shape_; }
  index_t size() const { return size_; }
  int device() const { return device_; }
  float* data() const { return buffer_ ? buffer_->floats() : nullptr; }

 private:
  std::vector<index_t> shape_;
  index_t size_ = 0;
  int device_;
  std::shared_ptr<DeviceBuffer> buffer_;
};

struct ExportedTensor {  // what a DLPack capsule of a DeviceArray owns
  DLManagedTensor managed;
  std::vector<int64_t> shape;
  PyObject* owner;  // the DeviceArray, kept alive until the consumer calls the deleter
};

void exported_deleter(DLManagedTensor* self) {
  auto* e = static_cast<ExportedTensor*>(self->manager_ctx);
  PyGILState_STATE gil = PyGILState_Ensure();
  Py_XDECREF(e->owner);
  PyGILState_Release(gil);
  delete e;
}

void capsule_destructor(PyObject* capsule) {
  if (PyCapsule_IsValid(capsule, "dltensor")) {  // never consumed: we still own it
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    if (m != nullptr && m->deleter != nullptr) m->deleter(m);
  } else {
    PyErr_Clear();
  }
}

py::capsule to_dlpack(py::object self) {
  const DeviceArray& a = self.cast<const DeviceArray&>();
  auto* e = new ExportedTensor;
  e->shape.assign(a.shape().begin(), a.shape().end());
  e->owner = self.ptr();
  Py_INCREF(e->owner);
  DLTensor& t = e->managed.dl_tensor;
  t.data = a.data();
  t.device = DLDevice{kDLCUDA, a.device()};
  t.ndim = static_cast<int32_t>(e->shape.size());
  t.dtype = DLDataType{2, 32, 1};
  t.shape = e->shape.data();
  t.strides = nullptr;
  t.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = exported_deleter;
  PyObject* cap = PyCapsule_New(&e->managed, "dltensor", capsule_destructor);
  if (cap == nullptr) {
    exported_deleter(&e->managed);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(cap);
}

py::dict cuda_array_interface(const DeviceArray& a) {
  py::dict d;
  py::tuple shape(a.shape().size());
  for (size_t i = 0; i < a.shape().size(); ++i) shape[i] = a.shape()[i];
  d["shape"] = shape;
  d["typestr"] = "<f4";
  d["data"] = py::make_tuple(reinterpret_cast<std::uintptr_t>(a.data()), false);
  d["strides"] = py::none();
  d["version"] = 3;
  d["stream"] = py::none();  // the data is complete: every run synchronizes before it returns
  return d;
}

py::array_t<float> to_numpy(const DeviceArray& a) {
  std::vector<py::ssize_t> shape(a.shape().begin(), a.shape().end());
  py::array_t<float> out(shape);
  if (a.size() > 0) {
    DeviceGuard guard(a.device());
    py::gil_scoped_release release;
    CC_CHECK(cudaMemcpy(out.mutable_data(), a.data(), static_cast<std::size_t>(a.size()) * 4, cudaMemcpyDeviceToHost));
  }
  return out;
}

DeviceArray from_numpy(const PlanArray& host, int device) {
  require_gpu(device);
  std::vector<index_t> shape(host.shape(), host.shape() + host.ndim());
  DeviceArray a(shape, device);
  if (a.size() > 0) {
    DeviceGuard guard(device);
    CC_CHECK(cudaMemcpy(a.data(), host.data(), static_cast<std::size_t>(a.size()) * 4, cudaMemcpyHostToDevice));
  }
  return a;
}

// A device array handed to run_device: its pointer and shape, and whatever keeps it valid until the run is over.
struct DeviceView {
  float* data = nullptr;
  std::vector<index_t> shape;
  index_t size = 0;
  py::object keep;
  DLManagedTensor* managed = nullptr;  // a consumed DLPack tensor: its deleter is called when the view goes
  DeviceView() = default;
  DeviceView(const DeviceView&) = delete;
  DeviceView(DeviceView&& o) noexcept
      : data(o.data), shape(std::move(o.shape)), size(o.size), keep(std::move(o.keep)), managed(o.managed) {
    o.managed = nullptr;
  }
  ~DeviceView() {
    if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
  }
};

std::string shape_text(const std::vector<index_t>& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) t += ", ";
    t += std::to_string(s[i]);
  }
  t += s.size() == 1 ? ",)" : ")";
  return t;
}

void check_device_pointer(const void* p, int device, const std::string& name) {
  cudaPointerAttributes attr;
  std::memset(&attr, 0, sizeof(attr));
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    throw std::invalid_argument(name + ": expected GPU memory (the CUDA driver does not know this pointer)");
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != 3 /* cudaMemoryTypeManaged */)
    throw std::invalid_argument(name + ": expected GPU memory (got host memory)");
  if (attr.device != device)
    throw std::invalid_argument(name + ": the array is on GPU " + std::to_string(attr.device) + ", the plan on GPU " +
                                std::to_string(device));
}

// Waits for the producer's stream (the CUDA array interface's "stream": 1 legacy default, 2 per-thread default).
void wait_for_stream(const py::object& stream) {
  if (stream.is_none()) return;
  const auto v = stream.cast<std::uintptr_t>();
  if (v == 0) return;
  cudaStream_t s = v == 1 ? cudaStreamLegacy : v == 2 ? cudaStreamPerThread : reinterpret_cast<cudaStream_t>(v);
  CC_CHECK(cudaStreamSynchronize(s));
}

DeviceView device_view(const py::handle& obj, int device, cudaStream_t consumer, bool writable,
                       const std::string& name) {
  DeviceView v;
  v.keep = py::reinterpret_borrow<py::object>(obj);
  if (py::isinstance<DeviceArray>(obj)) {
    const DeviceArray& a = obj.cast<const DeviceArray&>();
    v.data = a.data(), v.shape = a.shape(), v.size = a.size();
    if (a.device() != device)
      throw std::invalid_argument(name + ": the array is on GPU " + std::to_string(a.device()) + ", the plan on GPU " +
                                  std::to_string(device));
    return v;
  }
  if (py::hasattr(obj, "__cuda_array_interface__")) {
    py::dict cai = obj.attr("__cuda_array_interface__");
    const std::string typestr = py::str(cai["typestr"]);
    if (typestr != "<f4" && typestr != "|f4" && typestr != "=f4")
      throw py::type_error(name + ": expected float32 data (got typestr '" + typestr + "')");
    for (py::handle d : cai["shape"]) v.shape.push_back(d.cast<index_t>());
    v.size = 1;
    for (index_t d : v.shape) v.size *= d;
    if (cai.contains("strides") && !cai["strides"].is_none()) {
      index_t expect = 4;
      std::vector<index_t> strides;
      for (py::handle s : cai["strides"]) strides.push_back(s.cast<index_t>());
      for (size_t i = v.shape.size(); i-- > 0;) {
        if (v.shape[i] != 1 && strides.at(i) != expect)
          throw std::invalid_argument(name + ": expected a C-contiguous array");
        expect *= v.shape[i];
      }
    }
    py::tuple data = cai["data"];
    v.data = reinterpret_cast<float*>(data[0].cast<std::uintptr_t>());
    if (writable && data[1].cast<bool>()) throw std::invalid_argument(name + ": the array is read-only");
    if (cai.contains("stream")) wait_for_stream(cai["stream"]);
    if (v.size > 0) check_device_pointer(v.data, device, name);
    return v;
  }
  if (py::hasattr(obj, "__dlpack__")) {
    py::object cap;
    try {
      // The stream the data will be read on (1: the legacy default stream, which synchronous copies use).
      const std::uintptr_t stream = consumer != nullptr ? reinterpret_cast<std::uintptr_t>(consumer) : 1;
      cap = obj.attr("__dlpack__")(py::arg("stream") = stream);
    } catch (py::error_already_set&) {
      cap = obj.attr("__dlpack__")();
    }
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
    if (m == nullptr) throw py::error_already_set();
    PyCapsule_SetName(cap.ptr(), "used_dltensor");  // consumed: the deleter is ours to call
    v.managed = m;
    const DLTensor& t = m->dl_tensor;
    if (t.device.device_type != kDLCUDA && t.device.device_type != kDLCUDAManaged)
      throw std::invalid_argument(name + ": expected a GPU array (DLPack device type " +
                                  std::to_string(t.device.device_type) + ")");
    if (t.device.device_id != device)
      throw std::invalid_argument(name + ": the array is on GPU " + std::to_string(t.device.device_id) +
                                  ", the plan on GPU " + std::to_string(device));
    if (t.dtype.code != 2 || t.dtype.bits != 32 || t.dtype.lanes != 1)
      throw py::type_error(name + ": expected float32 data");
    v.shape.assign(t.shape, t.shape + t.ndim);
    v.size = 1;
    for (index_t d : v.shape) v.size *= d;
    if (t.strides != nullptr) {
      index_t expect = 1;
      for (int i = t.ndim; i-- > 0;) {
        if (v.shape[static_cast<size_t>(i)] != 1 && t.strides[i] != expect)
          throw std::invalid_argument(name + ": expected a C-contiguous array");
        expect *= v.shape[static_cast<size_t>(i)];
      }
    }
    v.data = reinterpret_cast<float*>(static_cast<char*>(t.data) + t.byte_offset);
    return v;
  }
  throw py::type_error(name + ": expected a GPU array (convcore.cuda.DeviceArray, or an object with "
                              "__cuda_array_interface__ or __dlpack__) (got " +
                       std::string(py::str(py::type::handle_of(obj).attr("__name__"))) + ")");
}

// ------------------------------------------------------------------------------------------------- plans
bool overlap(const DeviceView& a, const DeviceView& b) {
  const auto* a0 = reinterpret_cast<const char*>(a.data);
  const auto* b0 = reinterpret_cast<const char*>(b.data);
  return a.size > 0 && b.size > 0 && a0 < b0 + b.size * 4 && b0 < a0 + a.size * 4;
}

void run_device(Plan& p, const py::sequence& xs, const py::sequence& outs) {
  require(py::len(xs) == p.inputs().size(), "xs: expected one array per plan input");
  require(py::len(outs) == p.outputs().size(), "outs: expected one array per plan output");
  std::vector<DeviceView> in, out;
  for (size_t i = 0; i < py::len(xs); ++i)
    in.push_back(device_view(xs[i], p.device(), p.stream(), false, "x" + (xs.size() > 1 ? std::to_string(i) : "")));
  require(!in.empty() && !in[0].shape.empty() && in[0].shape[0] >= 1, "x: expected a batch of at least one");
  const index_t N = in[0].shape[0];
  for (size_t i = 0; i < in.size(); ++i) {
    const auto shape = p.input_shape(i, N);
    require(in[i].shape == shape, "x: expected shape " + shape_text(shape) + " (got " + shape_text(in[i].shape) + ")");
  }
  const auto shapes = p.output_shapes(N);
  for (size_t i = 0; i < py::len(outs); ++i) {
    out.push_back(device_view(outs[i], p.device(), p.stream(), true, "out[" + std::to_string(i) + "]"));
    require(out[i].shape == shapes[i], "out[" + std::to_string(i) + "]: expected shape " + shape_text(shapes[i]) +
                                           " (got " + shape_text(out[i].shape) + ")");
    for (const DeviceView& x : in)
      require(!overlap(out[i], x), "out[" + std::to_string(i) + "]: must not overlap the input");
    for (size_t j = 0; j < i; ++j)
      require(!overlap(out[i], out[j]), "out[" + std::to_string(i) + "]: must not overlap out[" + std::to_string(j) + "]");
  }
  std::vector<const float*> ins;
  std::vector<float*> ptrs;
  for (const auto& v : in) ins.push_back(v.data);
  for (const auto& v : out) ptrs.push_back(v.data);
  py::gil_scoped_release release;
  p.run_device(ins.data(), N, ptrs.data());
}

// A host copy of any GPU array (DeviceArray, __cuda_array_interface__, DLPack), for plans with CPU segments.
py::array_t<float> to_host(const py::object& obj) {
  int device = 0;
  if (py::isinstance<DeviceArray>(obj)) {
    device = obj.cast<const DeviceArray&>().device();
  } else if (py::hasattr(obj, "__dlpack_device__")) {
    device = obj.attr("__dlpack_device__")().cast<py::tuple>()[1].cast<int>();
  } else if (py::hasattr(obj, "__cuda_array_interface__")) {
    cudaPointerAttributes attr;
    py::tuple data = obj.attr("__cuda_array_interface__")["data"];
    if (cudaPointerGetAttributes(&attr, reinterpret_cast<void*>(data[0].cast<std::uintptr_t>())) == cudaSuccess &&
        attr.device >= 0)
      device = attr.device;
    cudaGetLastError();
  }
  DeviceGuard guard(device);
  const DeviceView v = device_view(obj, device, nullptr, false, "x");
  std::vector<py::ssize_t> shape(v.shape.begin(), v.shape.end());
  py::array_t<float> out(shape);
  if (v.size > 0) {
    py::gil_scoped_release release;
    CC_CHECK(cudaMemcpy(out.mutable_data(), v.data, static_cast<std::size_t>(v.size) * 4, cudaMemcpyDeviceToHost));
  }
  return out;
}

// dst[...] = src for two GPU arrays of one shape on one device.
void copy(const py::object& src, const py::object& dst) {
  const DeviceArray& s = src.cast<const DeviceArray&>();
  DeviceGuard guard(s.device());
  const DeviceView a = device_view(src, s.device(), nullptr, false, "src");
  const DeviceView b = device_view(dst, s.device(), nullptr, true, "dst");
  require(a.shape == b.shape, "dst: expected shape " + shape_text(a.shape) + " (got " + shape_text(b.shape) + ")");
  if (a.size > 0) {
    py::gil_scoped_release release;
    CC_CHECK(cudaMemcpy(b.data, a.data, static_cast<std::size_t>(a.size) * 4, cudaMemcpyDeviceToDevice));
  }
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "convcore's CUDA backend (use it through convcore.cuda and convcore.compile(..., device='cuda'))";
  // Local types and exception: a second build of this module (the tests' CPU emulator) can be loaded beside it.
  py::register_local_exception<CudaError>(m, "CudaError", PyExc_RuntimeError);

  m.def("status", &status_dict, "Whether a GPU is usable (and why not), device count, driver and runtime versions.");
  m.def("device_count", [] { return status().count; });
  m.def("device_info", &device_info, py::arg("device"));
  m.def("to_host", &to_host, py::arg("x"), "A numpy copy of a GPU array.");
  m.def("copy", &copy, py::arg("src"), py::arg("dst"), "dst[...] = src (src a DeviceArray, dst any GPU array).");

  py::class_<DeviceArray>(m, "DeviceArray", py::module_local(),
                          "A float32 array in GPU memory owned by convcore, readable without a copy by any library "
                          "that takes __cuda_array_interface__ or DLPack (cupy.asarray, torch.from_dlpack, ...); "
                          "numpy.asarray copies it to the host.")
      .def(py::init([](std::vector<index_t> shape, int device) {
             require_gpu(device);
             return DeviceArray(std::move(shape), device);
           }),
           py::arg("shape"), py::arg("device") = 0)
      .def_static("from_numpy", &from_numpy, py::arg("array").noconvert(), py::arg("device") = 0)
      .def_property_readonly("shape", [](const DeviceArray& a) {
        py::tuple t(a.shape().size());
        for (size_t i = 0; i < a.shape().size(); ++i) t[i] = a.shape()[i];
        return t;
      })
      .def_property_readonly("dtype", [](const DeviceArray&) { return py::dtype::of<float>(); })
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.shape().size(); })
      .def_property_readonly("size", &DeviceArray::size)
      .def_property_readonly("nbytes", [](const DeviceArray& a) { return a.size() * 4; })
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("ptr", [](const DeviceArray& a) { return reinterpret_cast<std::uintptr_t>(a.data()); })
      .def_property_readonly("__cuda_array_interface__", &cuda_array_interface)
      .def("__dlpack__", [](py::object self, py::object, py::object, py::object, py::object) { return to_dlpack(self); },
           py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
           py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& a) { return py::make_tuple(static_cast<int>(kDLCUDA), a.device()); })
      .def("numpy", &to_numpy, "A host copy.")
      .def("__array__", [](const DeviceArray& a, py::object dtype, py::object) {
             py::object out = to_numpy(a);
             return dtype.is_none() ? out : out.attr("astype")(dtype);
           },
           py::arg("dtype") = py::none(), py::arg("copy") = py::none())
      .def("__len__", [](const DeviceArray& a) {
        if (a.shape().empty()) throw py::type_error("len() of a 0-d array");
        return a.shape()[0];
      })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + shape_text(a.shape()) + ", dtype=float32, device=" + std::to_string(a.device()) +
               ")";
      });

  py::class_<Plan> plan(m, "Plan", py::module_local(),
                        "A network compiled for a GPU (built by convcore.compile(..., device='cuda')).");
  plan.def(py::init([](int device, const std::string& precision) {
             const Precision p = precision_from(precision);
             require_gpu(device);
             return new Plan(device, p);
           }),
           py::arg("device") = 0, py::arg("precision") = "fp32")
      .def_property_readonly("isa", [](const Plan&) { return std::string("cuda"); })
      .def_property_readonly("device", &Plan::device)
      .def_property_readonly("precision", [](const Plan& p) { return std::string(precision_text(p.precision())); });
  bind_builder(plan);
  plan.def("run", [](Plan& p, std::vector<PlanArray> xs, std::vector<PlanArray> outs, int /*threads*/) {
        std::vector<const float*> ins;
        std::vector<float*> ptrs;
        const index_t N = check_run_arrays(p, xs, outs, ins, ptrs);
        py::gil_scoped_release release;
        p.run_host(ins.data(), N, ptrs.data());
      }, py::arg("xs"), py::arg("outs"), py::arg("threads"), "Runs on numpy arrays (copied to and from the GPU).")
      .def("run_device", &run_device, py::arg("xs"), py::arg("outs"),
           "Runs on GPU arrays (DeviceArray, __cuda_array_interface__ or DLPack), writing into `outs`.")
      .def("profile", [](Plan& p, std::vector<PlanArray> xs, std::vector<PlanArray> outs, int /*threads*/,
                         int repeats) {
        std::vector<const float*> ins;
        std::vector<float*> ptrs;
        const index_t N = check_run_arrays(p, xs, outs, ins, ptrs);
        std::vector<convcore::ProfileEntry> prof;
        {
          py::gil_scoped_release release;
          prof = p.profile(ins.data(), N, ptrs.data(), repeats);
        }
        py::list out;
        for (const convcore::ProfileEntry& e : prof)
          out.append(py::make_tuple(e.name, e.kind, e.detail, e.flops, e.seconds));
        return out;
      }, py::arg("xs"), py::arg("outs"), py::arg("threads"), py::arg("repeats"));
}
