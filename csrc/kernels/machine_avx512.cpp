#include "kernels/machine.h"
#include "kernels/simd.h"

namespace convcore {
namespace avx512 {
using V = Vec512;
#include "kernels/machine_simd.inc"
}  // namespace avx512
}  // namespace convcore
