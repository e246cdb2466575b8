// What every source of the CUDA backend includes: the CUDA runtime (or its CPU emulator, CONVCORE_CUDA=emulate),
// error checking that turns every failed CUDA call and launch into a C++ exception (a Python CudaError), and the
// launch macro that both compile.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef CONVCORE_CUDA_EMULATE
#include "cuda/emu.h"
#else
#include <cuda_runtime.h>
#endif

namespace convcore::cuda {

using index_t = std::int64_t;

// A failed CUDA call or kernel launch (bindings.cpp maps it to convcore.cuda.CudaError, a RuntimeError).
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line);

}  // namespace convcore::cuda

#define CC_CHECK(call)                                                                       \
  do {                                                                                       \
    const cudaError_t cc_err_ = (call);                                                      \
    if (cc_err_ != cudaSuccess) ::convcore::cuda::throw_cuda(cc_err_, #call, __FILE__, __LINE__); \
  } while (0)

// CC_LAUNCH(kernel, grid, block, stream, args...): launch and check the launch. `kernel` must be one token (use a
// function pointer for a template instance: its arguments' commas would split the macro's arguments).
#ifdef CONVCORE_CUDA_EMULATE
#define CC_LAUNCH(kernel, grid, block, stream, ...)                             \
  do {                                                                          \
    (void)(stream);                                                             \
    ::emu::launch((grid), (block), [&] { kernel(__VA_ARGS__); }, #kernel);      \
    const cudaError_t cc_err_ = cudaGetLastError();                             \
    if (cc_err_ != cudaSuccess) ::convcore::cuda::throw_cuda(cc_err_, "launch of " #kernel, __FILE__, __LINE__); \
  } while (0)
#else
#define CC_LAUNCH(kernel, grid, block, stream, ...)                             \
  do {                                                                          \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__);                      \
    const cudaError_t cc_err_ = cudaGetLastError();                             \
    if (cc_err_ != cudaSuccess) ::convcore::cuda::throw_cuda(cc_err_, "launch of " #kernel, __FILE__, __LINE__); \
  } while (0)
#endif
