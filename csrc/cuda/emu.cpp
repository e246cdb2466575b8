// The CUDA emulator (see emu.h): fibers for the threads of a block, host memory with guard pages for the device.
#include "cuda/emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#error "the CUDA emulator (CONVCORE_CUDA=emulate) switches fibers with x86-64 assembly"
#endif

// emu_switch(save, load): saves the callee-saved registers on this stack and its stack pointer in *save, then
// continues on the stack `load` (which emu_switch saved earlier, or which make_stack prepared).
extern "C" void convcore_emu_switch(void** save, void* load);
asm(R"(
  .text
  .p2align 4
  .globl convcore_emu_switch
  .hidden convcore_emu_switch
  .type convcore_emu_switch, @function
convcore_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size convcore_emu_switch, .-convcore_emu_switch
)");

namespace emu {

uint3 g_thread_idx{0, 0, 0}, g_block_idx{0, 0, 0};
dim3 g_block_dim, g_grid_dim;

namespace {

std::recursive_mutex g_mutex;  // one launch or memory operation at a time
cudaError_t g_last_error = cudaSuccess;

void set_error(cudaError_t e) {
  if (g_last_error == cudaSuccess) g_last_error = e;
}

constexpr std::size_t kStackBytes = 256 << 10;
const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // lowest usable byte (a guard page lies below it)
  bool done = false, at_barrier = false;
  uint3 tid{0, 0, 0};
};

std::vector<Fiber> g_fibers;
void* g_scheduler_sp = nullptr;
Fiber* g_current = nullptr;
const std::function<void()>* g_body = nullptr;

[[noreturn]] void fiber_entry() {
  (*g_body)();
  g_current->done = true;
  convcore_emu_switch(&g_current->sp, g_scheduler_sp);
  std::abort();  // a finished fiber is never resumed
}

void prepare(Fiber& f) {
  if (f.stack == nullptr) {
    void* m = mmap(nullptr, kStackBytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, kPage, PROT_NONE);  // overflowing the stack faults instead of corrupting a neighbour
    f.stack = static_cast<char*>(m) + kPage;
  }
  // The frame convcore_emu_switch pops: six callee-saved registers, then the address it returns to.
  auto* top = reinterpret_cast<std::uintptr_t*>(f.stack + kStackBytes);  // 16-byte aligned
  std::uintptr_t* sp = top - 8;
  for (int i = 0; i < 6; ++i) sp[i] = 0;
  sp[6] = reinterpret_cast<std::uintptr_t>(&fiber_entry);
  sp[7] = 0;
  f.sp = sp;
  f.done = f.at_barrier = false;
}

bool reverse_order() {
  static const bool reverse = [] {
    const char* v = std::getenv("CONVCORE_CUDA_EMULATE_ORDER");
    return v != nullptr && std::string(v) == "reverse";
  }();
  return reverse;
}

// Device allocations: [base, base + bytes) ends at a guard page.
struct Allocation {
  void* map;
  std::size_t map_bytes, bytes;
};
std::map<std::uintptr_t, Allocation> g_allocations;

const Allocation* find(const void* p, std::uintptr_t* base = nullptr) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<std::size_t>(it->second.bytes, 1)) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}

bool is_device_range(const void* p, std::size_t bytes) {
  std::uintptr_t base;
  const Allocation* a = find(p, &base);
  return a != nullptr && reinterpret_cast<std::uintptr_t>(p) + bytes <= base + a->bytes;
}

}  // namespace

const char* thread_order() { return reverse_order() ? "reverse" : "forward"; }

void syncthreads() {
  g_current->at_barrier = true;
  convcore_emu_switch(&g_current->sp, g_scheduler_sp);
}

void launch(dim3 grid, dim3 block, const std::function<void()>& body, const char* name) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "convcore CUDA emulator: bad launch configuration for %s: grid (%u, %u, %u), block (%u, %u, %u)\n",
                 name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (g_fibers.size() < threads) g_fibers.resize(threads);
  g_grid_dim = grid;
  g_block_dim = block;
  g_body = &body;
  const bool reverse = reverse_order();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        g_block_idx = uint3{bx, by, bz};
        for (std::uint64_t t = 0; t < threads; ++t) {
          Fiber& f = g_fibers[t];
          prepare(f);
          f.tid = uint3{static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                        static_cast<unsigned>(t / (std::uint64_t{block.x} * block.y))};
        }
        bool any_done = false;
        for (;;) {
          bool any_barrier = false;
          for (std::uint64_t i = 0; i < threads; ++i) {
            Fiber& f = g_fibers[reverse ? threads - 1 - i : i];
            if (f.done) continue;
            f.at_barrier = false;
            g_current = &f;
            g_thread_idx = f.tid;
            convcore_emu_switch(&g_scheduler_sp, f.sp);
            if (f.done)
              any_done = true;
            else
              any_barrier = true;
          }
          if (!any_barrier) break;
          if (any_done) {
            std::fprintf(stderr, "convcore CUDA emulator: in %s, block (%u, %u, %u), some threads exited while others "
                                 "wait at __syncthreads()\n", name, bx, by, bz);
            set_error(cudaErrorLaunchFailure);
            return;
          }
        }
      }
  g_current = nullptr;
}

}  // namespace emu

namespace nvcuda::wmma::detail {
void check_tile_pointer(const void* p, unsigned ldm, std::size_t element_bytes) {
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0 || (ldm * element_bytes) % 16 != 0) {
    std::fprintf(stderr, "convcore CUDA emulator: wmma tile pointer %p must be 256-bit aligned and ldm %u a multiple "
                         "of 16 bytes\n", p, ldm);
    std::abort();
  }
}
}  // namespace nvcuda::wmma::detail

// ------------------------------------------------------------------------------------------------- host API
using emu::g_mutex;

struct CUstream_emu {
  int unused;
};
struct CUevent_emu {
  std::chrono::steady_clock::time_point when;
  bool recorded = false;
};

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return emu::g_last_error; }

static int emulated_devices() {
  const char* v = std::getenv("CONVCORE_CUDA_EMULATE_DEVICES");
  return v ? std::atoi(v) : 1;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = emulated_devices();
  return *n > 0 ? cudaSuccess : cudaErrorNoDevice;
}

static thread_local int g_device = 0;

cudaError_t cudaGetDevice(int* d) {
  *d = g_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emulated_devices()) return cudaErrorInvalidDevice;
  g_device = d;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d < 0 || d >= emulated_devices()) return cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "convcore CUDA emulator (CPU)");
  p->totalGlobalMem = std::size_t{8} << 30;
  p->sharedMemPerBlock = 48 << 10;
  p->maxThreadsPerBlock = 1024;
  p->major = 9, p->minor = 0;
  p->multiProcessorCount = 4;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  *free_bytes = *total_bytes = std::size_t{8} << 30;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const std::size_t used = (bytes + 3) / 4 * 4;
  const std::size_t pages = (used + emu::kPage - 1) / emu::kPage * emu::kPage;
  void* m = mmap(nullptr, pages + emu::kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return cudaErrorMemoryAllocation;
  mprotect(static_cast<char*>(m) + pages, emu::kPage, PROT_NONE);
  char* base = static_cast<char*>(m) + pages - used;
  std::memset(base, 0xff, used);  // NaN: a kernel that reads what nothing wrote poisons its result
  emu::g_allocations[reinterpret_cast<std::uintptr_t>(base)] = {m, pages + emu::kPage, used};
  *p = base;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (p == nullptr) return cudaSuccess;
  auto it = emu::g_allocations.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == emu::g_allocations.end()) return cudaErrorInvalidValue;
  munmap(it->second.map, it->second.map_bytes);
  emu::g_allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = emu::is_device_range(dst, bytes), src_dev = emu::is_device_range(src, bytes);
  const bool ok = kind == cudaMemcpyDefault ||
                  (kind == cudaMemcpyHostToDevice && dst_dev && !src_dev) ||
                  (kind == cudaMemcpyDeviceToHost && src_dev && !dst_dev) ||
                  (kind == cudaMemcpyDeviceToDevice && src_dev && dst_dev) ||
                  (kind == cudaMemcpyHostToHost && !src_dev && !dst_dev);
  if (!ok) {
    std::fprintf(stderr, "convcore CUDA emulator: cudaMemcpy kind %d does not match the pointers (dst %s, src %s)\n",
                 static_cast<int>(kind), dst_dev ? "device" : "host", src_dev ? "device" : "host");
    return cudaErrorInvalidValue;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  if (bytes == 0) return cudaSuccess;
  if (!emu::is_device_range(p, bytes)) return cudaErrorInvalidValue;
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const bool dev = emu::find(p) != nullptr;
  a->type = dev ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
  a->device = dev ? 0 : -1;
  a->devicePointer = dev ? const_cast<void*>(p) : nullptr;
  a->hostPointer = dev ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new CUstream_emu{0};
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu::g_last_error; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return emu::g_last_error; }

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_emu;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->when = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}
