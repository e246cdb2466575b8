#include "core/cpu.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace convcore {
namespace {

// XCR0 tells whether the OS saves the YMM / ZMM registers; CPUID alone is not enough.
unsigned long long read_xcr0() {
  unsigned int eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = ecx & (1u << 27);
  f.fma = ecx & (1u << 12);
  const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
  const bool ymm_ok = (xcr0 & 0x6) == 0x6;
  const bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ymm_ok && (ebx & (1u << 5));
    f.avx512f = zmm_ok && (ebx & (1u << 16));
    f.avx512dq = zmm_ok && (ebx & (1u << 17));
    f.avx512bw = zmm_ok && (ebx & (1u << 30));
    f.avx512vl = zmm_ok && (ebx & (1u << 31));
    f.amx_tile = edx & (1u << 24);
    f.amx_int8 = edx & (1u << 25);
    f.amx_bf16 = edx & (1u << 22);
    f.avx512_vnni = zmm_ok && (ecx & (1u << 11));
  }
  if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
    f.avx_vnni = eax & (1u << 4);
    f.avx512_bf16 = eax & (1u << 5);
  }
  f.fma = f.fma && ymm_ok;
  unsigned int brand[12] = {};
  if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) && eax >= 0x80000004) {
    for (unsigned int i = 0; i < 3; ++i) __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    char buf[49] = {};
    std::memcpy(buf, brand, 48);
    f.brand = buf;
    const auto first = f.brand.find_first_not_of(' ');
    f.brand = first == std::string::npos ? "" : f.brand.substr(first);
  }
  return f;
}

Isa best_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

// CONVCORE_ISA forces a path (tests, benchmarks); an ISA the CPU lacks is an error at import, not a crash later.
Isa initial_isa() {
  const char* env = std::getenv("CONVCORE_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  const Isa isa = isa_from_name(env);
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("CONVCORE_ISA=") + env + " but this CPU does not support " + env);
  return isa;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.avx2 && f.fma;
    case Isa::avx512: return f.avx2 && f.fma && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl;
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa isa_from_name(const std::string& name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("isa: expected one of 'scalar', 'avx2', 'avx512' (got '" + name + "')");
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) throw std::invalid_argument(std::string("isa: this CPU does not support ") + isa_name(isa));
  active_slot().store(static_cast<int>(isa));
}

}  // namespace convcore
