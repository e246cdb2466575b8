// CPU feature detection (once) and the instruction-set level the kernels run at.
#pragma once
#include <string>
#include <vector>

namespace convcore {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, amx_tile = false, amx_int8 = false, amx_bf16 = false, avx_vnni = false, avx512_vnni = false;
  std::string brand;
};

const CpuFeatures& cpu_features();
bool isa_supported(Isa isa);  // compiled in and usable on this CPU (incl. OS register-state support)
const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws invalid_argument on an unknown name
std::vector<Isa> available_isas();

Isa active_isa();
void set_active_isa(Isa isa);  // throws if the CPU cannot run it

}  // namespace convcore
