// AVX512-BF16 instantiation of the bf16 convolution (bf16_simd.inc): `vdpbf16ps` sums two bf16 products into each
// fp32 lane. Its own file, compiled with -mavx512bf16, chosen at run time where the CPU has it but no usable AMX
// (Zen 4 / Zen 5, Cooper Lake; CONVCORE_BF16=avx512bf16 forces it elsewhere).
#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels/bf16.h"
#include "kernels/simd.h"

namespace convcore {
namespace avx512bf16 {
using V = Vec512;
#pragma GCC diagnostic ignored "-Wunused-function"  // the activations this file's epilogue does not call
#include "kernels/activations_simd.inc"
#include "kernels/bf16_simd.inc"

extern const Bf16Kernels kBf16Kernels = {"avx512_bf16", b_conv_dp};
}  // namespace avx512bf16
}  // namespace convcore
