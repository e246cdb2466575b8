#include "ops/activation/activation.h"

namespace convcore {
namespace avx512 {
#define UNARY_NAME f32_unary_avx512
#include "ops/activation/activation_simd.inc"
}  // namespace avx512
}  // namespace convcore
