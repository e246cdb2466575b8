// bf16 convolutions (compile(..., precision="bf16")): inputs and weights rounded to bfloat16 (8 significant bits),
// products summed in fp32, the float epilogue of kernels.h (bias, residual, activation, mask). The Plan's tensors
// stay fp32: a kernel rounds its input as it gathers it.
//
// A product of two bf16 values is exact in fp32, so the kernels differ from each other (and from the double-sum
// reference) only in the order of their fp32 sums. What bf16 costs in accuracy is the rounding of x and w (a relative
// 2^-9 each): about 3e-3 of the largest output on a deep network, against fp32's 1e-6.
//
// The weights are packed once per block of 64 output channels as im2col rows: k = tap * Cg + c, padded with zeros to
// a multiple of 32 (`depth`), stored in pairs [k / 2][64 outputs][2] - the layout both AMX (`tdpbf16ps`: a 16 x 32
// input tile by a 32 x 16 weight tile) and AVX512-BF16 (`vdpbf16ps`: 16 lanes of pair products) read as it is. A
// kernel gathers 16 output pixels' im2col rows (16 x depth bf16 values, rounded from the float input) once and runs
// every block on them.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "kernels/kernels.h"

namespace convcore {

using Bf16Vector = std::vector<uint16_t, AlignedAllocator<uint16_t>>;

constexpr index_t kBf16Block = 64;  // output channels per packed block
constexpr index_t kBf16Step = 32;   // im2col depth per AMX step (the weight tile's 16 rows of pairs)

// x rounded to the nearest bfloat16 (ties to even, as the hardware's conversions round); NaN stays NaN.
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

struct BConvPacked {
  index_t depth = 0;   // im2col depth: taps * Cg rounded up to kBf16Step
  index_t blocks_per_group = 0;
  Bf16Vector w;        // per (group, block): depth * kBf16Block values, [depth / 2][64][2]
  AlignedVector bias;  // per (group, block): 64 floats, zero past Kg
  index_t panel() const { return depth * kBf16Block; }
};

// Which of a convolution's tensors are stored as bf16 rather than fp32 (a bf16 Plan stores a result as bf16 where only
// bf16 convolutions read it: half the memory traffic, and no rounding pass in the reader's gather): element (pixel p,
// channel c) at reinterpret_cast<uint16_t*>(base)[p * stride + c], the stride counted in elements as for fp32.
struct Bf16Storage {
  bool x = false, res = false, y = false;
};

struct Bf16Kernels {
  const char* name;
  // Output pixels [p0, p1) x packed blocks [b0, b1) (block b = group b / blocks_per_group), as Kernels::conv.
  void (*conv)(const ConvGeom& g, const BConvPacked& p, const ConvIO& io, const Epilogue& e, const Bf16Storage& st,
               index_t p0, index_t p1, index_t b0, index_t b1);
};

// Where tap (r, s) of output pixel (n, oh, ow) reads channel c0 in a bf16 tensor, or the zeros in the padding.
inline const uint16_t* conv_tap_ptr_bf16(const ConvGeom& g, const ConvIO& io, index_t n, index_t oh, index_t ow,
                                         index_t r, index_t s, index_t c0) {
  const index_t ih = oh * g.sh - g.pt + r * g.dh, iw = ow * g.sw - g.pl + s * g.dw;
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return reinterpret_cast<const uint16_t*>(io.zero);
  return reinterpret_cast<const uint16_t*>(io.x) + ((n * g.H + ih) * g.W + iw) * io.xs + c0;
}

// The bf16 kernels of this CPU - AMX-BF16 where Linux grants the tile state, else AVX512-BF16
// (CONVCORE_BF16=avx512bf16 forces the latter, for tests), or the reference loops for Isa::scalar - or null where
// the CPU has neither.
const Bf16Kernels* bf16_kernels_for(Isa isa);

// OIHW float weights (K, Cg, R, S) and bias (or null) rounded and packed for the bf16 kernels.
BConvPacked pack_bconv(const ConvGeom& g, const float* w, const float* bias);

// The 16 (or fewer: the rest zero) im2col rows of output pixels [px, px + rows) of group grp, rounded to bf16:
// dst[j * depth + t * Cg + c] = x at tap t of pixel px + j, channel grp * Cg + c (0 in the padding and past
// taps * Cg); x is bf16 already with x_bf16. The scalar form; the SIMD kernels have their own.
void gather_bf16_ref(const ConvGeom& g, const ConvIO& io, bool x_bf16, index_t depth, index_t grp, index_t px,
                     index_t rows, uint16_t* dst);

namespace ref {
extern const Bf16Kernels kBf16Kernels;
}
namespace avx512bf16 {
extern const Bf16Kernels kBf16Kernels;
}
namespace amx {
extern const Bf16Kernels kBf16Kernels;
bool amx_permitted();
}

}  // namespace convcore
