#include "ops/activation/activation.h"

namespace convcore {
namespace avx2 {
#define UNARY_NAME f32_unary_avx2
#include "ops/activation/activation_simd.inc"
}  // namespace avx2
}  // namespace convcore
