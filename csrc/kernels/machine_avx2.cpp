#include "kernels/machine.h"
#include "kernels/simd.h"

namespace convcore {
namespace avx2 {
using V = Vec256;
#include "kernels/machine_simd.inc"
}  // namespace avx2
}  // namespace convcore
