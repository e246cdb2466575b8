// int8 convolution kernels (ONNX QDQ semantics): uint8 activations x int8 weights, exact int32 sums, then one float
// epilogue per output: y = act(scale[k] * (sum - corr[k]) + bias[k] [+ residual]) [fake-quantized to the next
// tensor's int8 grid]. The compiled Plan (plan/int8_ops.cpp) quantizes a conv's float input once into a byte tensor
// and runs these on it.
//
// Activations are stored as u = q + offset (offset 128 for int8, 0 for uint8): bytes 0..255, so the VNNI instruction
// (u8 x s8, four products summed into an int32) takes them as they are. The true product sum over (q - zero_point) is
// sum(u * w) - o * sum(w) with o = zero_point + offset: corr[k] = o * (the sum of output channel k's weights). A pixel
// in the padding holds o (its value is 0), so the correction is the same for every output pixel.
//
// Three implementations with one signature: the reference loops (int8_ref.cpp), the exact 16-bit `vpmaddwd` form for
// AVX2 and AVX-512 machines without VNNI (no `vpmaddubsw`: its 16-bit sums saturate), and AVX-512 VNNI `vpdpbusd`
// (kernels_avx512vnni.cpp). All three give the same int32 sums; the float epilogue may differ in the last bit.
#pragma once
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "kernels/kernels.h"

namespace convcore {

using ByteVector = std::vector<int8_t, AlignedAllocator<int8_t>>;

// A byte tensor's layout: each group's Cg channels padded to a multiple of 4 (`quads` groups of 4 bytes), the
// groups side by side, `stride` bytes per pixel.
struct QuantLayout {
  index_t groups, Cg, quads, stride;
};

// The requantization of a value onto an int8 grid (a QuantizeLinear -> DequantizeLinear pair):
// y = scale * clamp(rint(y * inv), low, low + 255), low = qmin - zero_point, inv = 1 / scale (a multiply, as int8
// runtimes requantize: it may round a value sitting within an ulp of a tie the other way than x / scale). Off when
// scale == 0.
struct FakeQuant {
  float scale = 0.0f, low = 0.0f, inv = 0.0f;
};

// A result stored as bytes for the next int8 convolution (which reads them as they are): u = clamp(rint(y * inv) +
// zero, lo, hi) + offset, one byte per channel (the channel count a multiple of 4: no padding). Off when inv == 0.
struct ByteStore {
  float inv = 0.0f;
  int zero = 0, lo = 0, hi = 0, offset = 0;
};

// A QDQ graph's steps after an int8 convolution, in order: its output's own grid (`sum`), a residual add, the
// activation, the grid of the result (`out`): y = out(act(sum(scale * acc + bias) + residual)); or, with `bytes`,
// the result quantized onto the next convolution's grid and stored as bytes (y then points to bytes, ys in bytes).
struct QuantEpilogue {
  Epilogue e;
  FakeQuant sum, out;
  ByteStore bytes;
};

// Where output pixel px, channel oc0 lies: floats, or bytes with QuantEpilogue::bytes.
inline float* conv_out_ptr(float* y, index_t ys, const QuantEpilogue& qe, index_t px, index_t oc0) {
  if (qe.bytes.inv == 0.0f) return y + px * ys + oc0;
  return reinterpret_cast<float*>(reinterpret_cast<uint8_t*>(y) + px * ys + oc0);
}

// The byte of one value (ByteStore), NaN stored as the zero point.
inline uint8_t store_byte(float v, const ByteStore& b) {
  const float r = __builtin_nearbyintf(v * b.inv) + static_cast<float>(b.zero);
  const float c = r != r ? static_cast<float>(b.zero)
                         : (r < static_cast<float>(b.lo) ? static_cast<float>(b.lo)
                                                         : (r > static_cast<float>(b.hi) ? static_cast<float>(b.hi) : r));
  return static_cast<uint8_t>(static_cast<int>(c) + b.offset);
}

// Weights packed per (group, block of nr output channels): [tap][quad][nr][4] int8 (zero past Cg and Kg), and per
// output channel (padded to the blocks) the int32 correction, the float scale (input scale x weight scale) and bias.
struct QConvPacked {
  ConvTile t;  // mr, nv, nr; blocks_per_group; panel = taps * quads * nr * 4 bytes
  index_t quads = 0;
  ByteVector w;
  std::vector<int32_t> corr;
  AlignedVector scale, bias;
};

// The quantization of a tensor (ONNX QuantizeLinear, per tensor): q = clamp(rint(x / scale) + zero, lo, hi); offset
// 128 for int8 (stored as q + 128), 0 for uint8.
struct QuantParams {
  float scale;
  int zero, lo, hi, offset;
};

struct QConvIO {
  const uint8_t* x;  // the byte tensor (QuantLayout), pixel 0 of image 0; or null: a pointwise conv reading xf
  index_t xs;        // bytes per pixel
  const float* xf;   // a pointwise conv's float input (one group), quantized a tile of pixels at a time, or null
  index_t xfs;
  QuantParams qp;    // xf's quantization
  const uint8_t* pad;  // one pixel of padding (o in every byte)
  float* y;
  index_t ys;
  const float* res;  // added before the activation, or null
  index_t rs;
};

struct Int8Kernels {
  const char* name;
  int lanes;
  // Tile shape for Kg output channels per group: fills mr / nv / nr.
  void (*conv_tile)(index_t Kg, ConvTile& t);
  // q[p * qs + grp * quads * 4 + j] = clamp(rint(x[p * xs + grp * Cg + j] / scale) + zero, lo, hi) + offset for
  // pixels [p0, p1), the bytes past Cg set to zero + offset.
  void (*quantize)(const float* x, index_t xs, const QuantLayout& l, float scale, int zero, int lo, int hi, int offset,
                   uint8_t* q, index_t p0, index_t p1);
  // Output pixels [p0, p1) x packed blocks [b0, b1), as Kernels::conv.
  void (*conv)(const ConvGeom& g, const QConvPacked& p, const QConvIO& io, const QuantEpilogue& qe, index_t p0,
               index_t p1, index_t b0, index_t b1);
};

// The fastest int8 kernels for `isa` on this CPU (AMX, else VNNI, where it has them; CONVCORE_INT8=vnni / madd
// forces a slower form, for tests), or the reference ones for Isa::scalar.
const Int8Kernels& int8_kernels_for(Isa isa);

// OIHW int8 weights (K, Cg, R, S) packed for `k`'s tile, with per-output-channel scale and bias (or null: 0) and the
// correction for activation offset `o`.
QConvPacked pack_qconv(const Int8Kernels& k, const ConvGeom& g, const int8_t* w, const float* scale,
                       const float* bias, int o);

namespace ref {
extern const Int8Kernels kInt8Kernels;
}
namespace avx2 {
extern const Int8Kernels kInt8Kernels;
}
namespace avx512 {
extern const Int8Kernels kInt8Kernels;
}
namespace avx512vnni {
extern const Int8Kernels kInt8Kernels;
}
namespace amx {
extern const Int8Kernels kInt8Kernels;
bool amx_permitted();  // asks Linux for the tile state once per process
}

// The float epilogue of one output value, shared by the reference kernel and the SIMD kernels' tails.
inline float fake_quant(float v, const FakeQuant& fq) {
  if (fq.scale == 0.0f || v != v) return v;
  float q = __builtin_nearbyintf(v * fq.inv);
  q = q < fq.low ? fq.low : (q > fq.low + 255.0f ? fq.low + 255.0f : q);
  return q * fq.scale;
}

}  // namespace convcore
