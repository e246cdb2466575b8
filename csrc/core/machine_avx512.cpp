#include "core/machine.h"
#include "plan/simd.h"

namespace convcore {
namespace avx512 {
using V = Vec512;
#include "core/machine_simd.inc"
}  // namespace avx512
}  // namespace convcore
