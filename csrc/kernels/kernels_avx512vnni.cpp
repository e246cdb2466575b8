// AVX-512 VNNI instantiation of the int8 kernels (int8_simd.inc): `vpdpbusd` sums four u8 x s8 products into each
// int32 lane in one instruction. Its own file, compiled with -mavx512vnni, chosen at run time where the CPU has it
// (Ice Lake / Sapphire Rapids Xeons, Zen 4 and later); other AVX-512 CPUs run the 16-bit form of kernels_avx512.cpp.
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/int8.h"
#include "kernels/simd.h"

namespace convcore {
namespace avx512vnni {
using V = Vec512;
constexpr int kMaxMR = 8;
constexpr int kMaxNV = 4;
constexpr int kTileRows[kMaxNV] = {8, 8, 8, 6};
constexpr const char* kIsaName = "avx512_vnni";
#pragma GCC diagnostic ignored "-Wunused-function"  // the activations this file's int8 epilogue does not call
#include "kernels/activations_simd.inc"
#include "kernels/int8_simd.inc"
}  // namespace avx512vnni
}  // namespace convcore
