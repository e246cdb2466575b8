// A CPU emulator of the part of CUDA that convcore's GPU backend uses (CONVCORE_CUDA=emulate, tests only).
//
// The same kernel sources (csrc/cuda/*.cu) compile as plain C++ against this header: each thread of a block is a
// fiber with its own stack, __syncthreads() switches back to a scheduler that resumes every thread of the block once
// all of them have reached the barrier, __shared__ variables are function statics (blocks run one at a time), and the
// host API (cudaMalloc, cudaMemcpy, streams, events, ...) runs synchronously on host memory. It checks what a GPU
// would refuse or what would be a bug on one:
//   - launch configurations (more than 1024 threads, empty grids, grid limits) fail as on a GPU;
//   - a __syncthreads() that not every thread of the block reaches fails the launch;
//   - device allocations are filled with NaN (so reading memory no kernel wrote poisons the result) and end at a
//     guard page (so reading or writing past the end of an allocation faults);
//   - cudaMemcpy directions are checked against what is device memory;
//   - wmma loads check the pointer alignment (256 bits) and leading dimension the hardware requires;
//   - CONVCORE_CUDA_EMULATE_ORDER=reverse runs the threads of every block in reverse order between barriers, so a
//     race (a result that depends on thread order) shows up as a difference between two runs.
// It does not model warps, memory coalescing, timing or the hardware's rounding in tensor-core accumulation.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// ---------------------------------------------------------------------------------------------- kernel language
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};

namespace emu {
extern uint3 g_thread_idx, g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
void syncthreads();
// Runs body once per thread of every block of the grid; sets the launch error on a bad configuration.
void launch(dim3 grid, dim3 block, const std::function<void()>& body, const char* name);
// "forward" or "reverse" (CONVCORE_CUDA_EMULATE_ORDER): the order threads run in between barriers.
const char* thread_order();
}  // namespace emu

#define threadIdx (::emu::g_thread_idx)
#define blockIdx (::emu::g_block_idx)
#define blockDim (::emu::g_block_dim)
#define gridDim (::emu::g_grid_dim)
#define __syncthreads() ::emu::syncthreads()

struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// bf16 as the hardware stores it: the upper half of a float, rounded to nearest even.
struct __nv_bfloat16 {
  unsigned short x;
};
inline __nv_bfloat16 __float2bfloat16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{static_cast<unsigned short>((u >> 16) | 0x40u)};  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<unsigned short>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b.x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------------- wmma
// Each emulated thread holds the whole tile (num_elements = rows * cols), so a warp's collective operations are done
// redundantly by its 32 threads with identical results; code that touches fragment elements only elementwise (over
// all num_elements) means the same thing on the hardware and here.
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class T>
struct storage {
  using type = T;
};
template <>
struct storage<precision::tf32> {
  using type = float;
};
template <class Use, int M, int N, int K>
struct dims;
template <int M, int N, int K>
struct dims<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct dims<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct dims<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};
void check_tile_pointer(const void* p, unsigned ldm, std::size_t element_bytes);
inline float tf32_truncate(float v) {  // the tensor cores read the top 19 bits of an fp32 operand
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}
template <class T>
inline float as_float(T v) {
  return static_cast<float>(v);
}
template <>
inline float as_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  using element_type = typename detail::storage<T>::type;
  static constexpr int rows = detail::dims<Use, M, N, K>::rows, cols = detail::dims<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = static_cast<typename fragment<Use, M, N, K, T, L>::element_type>(v);
}

template <class Use, int M, int N, int K, class T, class L, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const P* p, unsigned ldm) {
  detail::check_tile_pointer(p, ldm, sizeof(P));
  constexpr bool row = std::is_same<L, row_major>::value;
  for (int i = 0; i < f.rows; ++i)
    for (int j = 0; j < f.cols; ++j) f.x[i * f.cols + j] = row ? p[i * ldm + j] : p[j * ldm + i];
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t l) {
  detail::check_tile_pointer(p, ldm, sizeof(float));
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) f.x[i * N + j] = l == mem_row_major ? p[i * ldm + j] : p[j * ldm + i];
}

template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t l) {
  detail::check_tile_pointer(p, ldm, sizeof(float));
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) (l == mem_row_major ? p[i * ldm + j] : p[j * ldm + i]) = f.x[i * N + j];
}

template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  constexpr bool tf32 = std::is_same<T, precision::tf32>::value;
  float out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float acc = c.x[i * N + j];
      for (int k = 0; k < K; ++k) {
        float av = detail::as_float(a.x[i * K + k]), bv = detail::as_float(b.x[k * N + j]);
        if (tf32) av = detail::tf32_truncate(av), bv = detail::tf32_truncate(bv);
        acc += av * bv;
      }
      out[i * N + j] = acc;
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}

// cvt.rna.tf32.f32: round to the nearest tf32 value (10 mantissa bits), ties away from zero.
inline float __float_to_tf32(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}
}  // namespace wmma
}  // namespace nvcuda

// -------------------------------------------------------------------------------------------------- host API
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInsufficientDriver = 35,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2 };
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};
struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int maxThreadsPerBlock;
  int major, minor;
  int multiProcessorCount;
};
struct CUstream_emu;
struct CUevent_emu;
using cudaStream_t = CUstream_emu*;
using cudaEvent_t = CUevent_emu*;
constexpr unsigned cudaStreamNonBlocking = 1;

const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
cudaError_t cudaMalloc(void** p, std::size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// Stream handles as the CUDA array interface and DLPack encode them (1: legacy default, 2: per-thread default).
#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))
#define cudaStreamPerThread (reinterpret_cast<cudaStream_t>(0x2))
