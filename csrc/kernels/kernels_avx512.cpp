// AVX-512 instantiation of the kernels: 16 lanes, 32 zmm registers. Tiles keep up to 24 accumulators:
// 8 pixels x 1-3 vectors or 6 pixels x 4 vectors (64 output channels), so every FMA chain has 4+ cycles of slack.
#include <array>
#include <limits>
#include <utility>
#include <vector>
#include <algorithm>

#include <cstring>

#include "kernels/int8.h"
#include "kernels/kernels.h"
#include "kernels/simd.h"

namespace convcore {
namespace avx512 {
using V = Vec512;
constexpr int kMaxMR = 8;
constexpr int kMaxNV = 4;
constexpr int kTileRows[kMaxNV] = {8, 8, 8, 6};  // pixels per tile for 1..4 vectors
constexpr int kDwBlock = 8;  // depthwise output columns per interior block (stride 1)
constexpr int kDwPadBlock = 16;  // depthwise output columns per block of the padded path
constexpr int kDwPaddedWidth = 64;  // depthwise maps up to this wide (+ left padding) take the zero-padded path
constexpr const char* kIsaName = "avx512";
#include "kernels/kernels_simd.inc"
#include "kernels/int8_simd.inc"
}  // namespace avx512
}  // namespace convcore
