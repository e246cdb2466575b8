// AVX2 + FMA instantiation of the kernels: 8 lanes, 16 ymm registers, so tiles keep at most 12 accumulators
// (8 pixels x 1 vector, 6 x 2, 4 x 3) and leave room for the weight vectors and the broadcast.
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
namespace avx2 {
using V = Vec256;
constexpr int kMaxMR = 8;
constexpr int kMaxNV = 3;
constexpr int kTileRows[4] = {8, 6, 4, 4};
constexpr int kDwBlock = 4;  // depthwise output columns per interior block (stride 1)
constexpr int kDwPadBlock = 8;  // depthwise output columns per block of the padded path
constexpr int kDwPaddedWidth = 64;  // depthwise maps up to this wide (+ left padding) take the zero-padded path
constexpr const char* kIsaName = "avx2";
#include "kernels/kernels_simd.inc"
#include "kernels/int8_simd.inc"
}  // namespace avx2
}  // namespace convcore
