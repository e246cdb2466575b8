#include "core/machine.h"
#include "plan/simd.h"

namespace convcore {
namespace avx2 {
using V = Vec256;
#include "core/machine_simd.inc"
}  // namespace avx2
}  // namespace convcore
