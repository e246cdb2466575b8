// AMX convolutions (Sapphire Rapids and later), int8 and bf16. int8: tile registers of 16 rows x 64 bytes, `tdpbusd` multiplying a
// 16-pixel x 64-channel u8 tile by a 64-channel x 16-output s8 tile into 16 x 16 int32 sums - 16K multiply-adds per
// instruction, 8x the VNNI rate. Its own file, compiled with -mamx-tile -mamx-int8, chosen at run time where the
// CPU has AMX-INT8 and Linux grants the tile state (arch_prctl).
//
// One output tile is 16 consecutive pixels x 64 output channels (4 accumulator tiles, tmm0-3); tmm4 holds the input
// tile, tmm5 / tmm6 the weight tiles in turn. The weights are the VNNI kernels' packed panels as they are
// ([tap][quad][64][4]: a weight tile is 16 quads of one 16-channel column, rows 256 bytes apart). The input rows of
// a tap are read in place where they lie evenly spaced in memory (16 pixels of one output row inside the image, a 1x1
// convolution), else gathered into a small buffer once per pixel tile (an im2col of 16 pixels). Layers AMX does not fit (grouped, input channels not a multiple of 64,
// fewer than 64 output channels per tile, the last pixels short of a tile) run on the VNNI kernels of this file.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/int8.h"
#include "kernels/simd.h"

namespace convcore {
namespace amx {
using V = Vec512;
constexpr int kMaxMR = 8;
constexpr int kMaxNV = 4;
constexpr int kTileRows[kMaxNV] = {8, 8, 8, 6};
constexpr const char* kIsaName = "avx512_amx";
#pragma GCC diagnostic ignored "-Wunused-function"  // the activations this file's int8 epilogue does not call
#define CONVCORE_INT8_OWN_TABLE
#include "kernels/activations_simd.inc"
#include "kernels/int8_simd.inc"
#include "kernels/bf16_simd.inc"

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0-3: sums (16 x 16 int32), tmm4: inputs (16 pixels x 64 bytes), tmm5 / tmm6: weights (16 quads x 64 bytes).
const TileConfig& tile_config() {
  static const TileConfig c = [] {
    TileConfig t;
    for (int i = 0; i < 7; ++i) t.colsb[i] = 64, t.rows[i] = 16;
    return t;
  }();
  return c;
}

// The 4 accumulator tiles (tmm0-3) of a 16 x 64 output tile, zeroed, or loaded from / stored to 16 rows of 64
// four-byte sums (int32 or fp32) at acc, 256 bytes apart.
void zero_sums() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}
void load_sums(const void* acc) {
  const char* a = static_cast<const char*>(acc);
  _tile_loadd(0, a, 256);
  _tile_loadd(1, a + 64, 256);
  _tile_loadd(2, a + 128, 256);
  _tile_loadd(3, a + 192, 256);
}
void store_sums(void* acc) {
  char* a = static_cast<char*>(acc);
  _tile_stored(0, a, 256);
  _tile_stored(1, a + 64, 256);
  _tile_stored(2, a + 128, 256);
  _tile_stored(3, a + 192, 256);
}

bool fits_amx(const ConvGeom& g, const QConvPacked& p) { return g.groups == 1 && p.t.nr == 64 && p.quads % 16 == 0; }

// The float epilogue of 16 pixels x 64 channels of int32 sums (acc rows 64 apart), as q_conv_tile's.
void epilogue16(const int32_t* acc, int rows, const int32_t* corr, const float* scale, const float* bias, float* y,
                index_t ys, const float* res, index_t rs, int nvalid, const QuantEpilogue& qe) {
  with_act_fn(qe.e, [&](auto&& activate) {
    for (int v = 0; v < 4; ++v) {
      const int n = std::min(16, nvalid - v * 16);
      if (n <= 0) break;
      const vmask mask = V::tail(n);
      const __m512i c = _mm512_loadu_si512(corr + v * 16);
      const reg s = V::load(scale + v * 16), b = V::load(bias + v * 16);
      for (int m = 0; m < rows; ++m) {
        reg o = V::fma(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(acc + m * 64 + v * 16), c)), s, b);
        if (qe.sum.scale != 0.0f) o = fake_quant_v(o, qe.sum);
        if (res) o = V::add(o, V::load(res + m * rs + v * 16, mask));
        o = activate(o);
        if (qe.bytes.inv != 0.0f) {
          store_bytes_q(reinterpret_cast<uint8_t*>(y) + m * ys + v * 16, o, qe.bytes, n);
          continue;
        }
        if (qe.out.scale != 0.0f) o = fake_quant_v(o, qe.out);
        V::store(y + m * ys + v * 16, o, mask);
      }
    }
  });
}

// Tiles of 16 pixels in [p0, p1) x blocks [b0, b1) on AMX; the pixels after the last whole tile on VNNI.
void q_conv_amx(const ConvGeom& g, const QConvPacked& p, const QConvIO& io, const QuantEpilogue& qe, index_t p0,
                index_t p1, index_t b0, index_t b1) {
  if (!fits_amx(g, p) || p1 - p0 < 16) return q_conv(g, p, io, qe, p0, p1, b0, b1);
  const index_t taps = g.taps(), row = p.quads * 4, steps = p.quads / 16;
  thread_local std::vector<uint8_t> gathered;  // [tap][16 pixels][row]
  thread_local std::vector<int32_t> sums;      // [2][16][64]: this tile's, the last one's
  thread_local std::vector<const uint8_t*> tap_at;  // per tap: its 16 rows' first byte and their spacing
  thread_local std::vector<index_t> tap_as;
  tap_at.resize(static_cast<size_t>(taps));
  tap_as.resize(static_cast<size_t>(taps));
  if (static_cast<index_t>(gathered.size()) < taps * 16 * row) gathered.resize(static_cast<size_t>(taps * 16 * row));
  sums.resize(2 * 16 * 64);
  struct Pending {
    const int32_t* acc = nullptr;
    index_t px = 0, b = 0;
  } pending;
  auto finish_pending = [&] {
    if (!pending.acc) return;
    const index_t oc0 = pending.b * 64;
    const int nvalid = static_cast<int>(std::min<index_t>(64, g.Kg - oc0));
    epilogue16(pending.acc, 16, p.corr.data() + oc0, p.scale.data() + oc0, p.bias.data() + oc0,
               conv_out_ptr(io.y, io.ys, qe, pending.px, oc0), io.ys,
               io.res ? io.res + pending.px * io.rs + oc0 : nullptr, io.rs, nvalid, qe);
    pending.acc = nullptr;
  };
  index_t done = 0;
  const bool pointwise = taps == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.H == g.OH && g.W == g.OW;
  const index_t tiles_end = p0 + (p1 - p0) / 16 * 16;
  _tile_loadconfig(&tile_config());
  for (index_t px = p0; px < tiles_end; px += 16) {
    // Where tap t's 16 input rows lie: tap_at[t], rows tap_as[t] bytes apart.
    if (io.xf) {  // a pointwise conv on its float input: the tile quantized into the buffer
      q_quantize(io.xf + px * io.xfs, io.xfs, QuantLayout{1, g.Cg, p.quads, row}, io.qp.scale, io.qp.zero, io.qp.lo,
                 io.qp.hi, io.qp.offset, gathered.data(), 0, 16);
      tap_at[0] = gathered.data(), tap_as[0] = row;
    } else if (pointwise) {  // consecutive pixels: evenly spaced already
      tap_at[0] = io.x + px * io.xs, tap_as[0] = io.xs;
    } else {
      // Per tap: 16 pixels of one output row whose inputs for this tap lie in one input row are evenly spaced
      // (read in place; a tap wholly in the padding reads the padding pixel 16 times); others are gathered.
      const index_t n0 = px / (g.OH * g.OW), oh0 = px / g.OW % g.OH, ow0 = px % g.OW;
      const bool one_row = ow0 + 16 <= g.OW;
      for (index_t t = 0; t < taps; ++t) {
        const index_t r = t / g.S, c = t % g.S;
        if (one_row) {
          const index_t ih = oh0 * g.sh - g.pt + r * g.dh, iw0 = ow0 * g.sw - g.pl + c * g.dw;
          if (ih < 0 || ih >= g.H) {
            tap_at[t] = io.pad, tap_as[t] = 0;
            continue;
          }
          if (iw0 >= 0 && iw0 + 15 * g.sw < g.W) {
            tap_at[t] = io.x + ((n0 * g.H + ih) * g.W + iw0) * io.xs, tap_as[t] = g.sw * io.xs;
            continue;
          }
        }
        uint8_t* dst = gathered.data() + t * 16 * row;
        for (index_t j = 0; j < 16; ++j) {
          const index_t q = px + j, n = q / (g.OH * g.OW), oh = q / g.OW % g.OH, ow = q % g.OW;
          const index_t ih = oh * g.sh - g.pt + r * g.dh, iw = ow * g.sw - g.pl + c * g.dw;
          const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          std::memcpy(dst + j * row, inside ? io.x + ((n * g.H + ih) * g.W + iw) * io.xs : io.pad,
                      static_cast<size_t>(row));
        }
        tap_at[t] = dst, tap_as[t] = row;
      }
    }
    for (index_t b = b0; b < b1; ++b) {
      const int8_t* w = p.w.data() + b * p.t.panel;
      zero_sums();
      for (index_t t = 0; t < taps; ++t) {
        const uint8_t* at = tap_at[t];
        const index_t ats = tap_as[t];
        const int8_t* wt = w + t * p.quads * 256;
        for (index_t k = 0; k < steps; ++k) {
          _tile_loadd(4, at + k * 64, ats);
          const int8_t* wk = wt + k * 16 * 256;
          _tile_loadd(5, wk, 256);
          _tile_dpbusd(0, 4, 5);
          _tile_loadd(6, wk + 64, 256);
          _tile_dpbusd(1, 4, 6);
          _tile_loadd(5, wk + 128, 256);
          _tile_dpbusd(2, 4, 5);
          _tile_loadd(6, wk + 192, 256);
          _tile_dpbusd(3, 4, 6);
        }
      }
      // The epilogue runs one tile behind (as b_conv_amx's): the sums' tile stores have landed by then.
      int32_t* acc = sums.data() + (done++ & 1) * 16 * 64;
      finish_pending();
      store_sums(acc);
      pending = {acc, px, b};
    }
  }
  finish_pending();
  _tile_release();
  if (tiles_end < p1) q_conv(g, p, io, qe, tiles_end, p1, b0, b1);
}

// bf16 (bf16.h): the same tiles, `tdpbf16ps` multiplying 16 pixels x 32 bf16 im2col values by 32 values x 16
// outputs into 16 x 16 fp32 sums (8K multiply-adds per instruction, half the int8 rate). The input rows are the
// gathered im2col rows (bf16_simd.inc), whole chunks of tiles at a time; the weight tiles the packed pairs as they
// are. Two orders:
// - small weights (one depth slice, every block's panel together within kSmallWeights): tile by tile, every block of
//   a tile before the next tile, so the epilogue reads and writes whole pixels in order (ResNet's 1x1 layers at
//   56 x 56: the residual and output rows streamed once, not once per block);
// - else block by block over the chunk, the depth split into slices whose weights (64 outputs x 256 values, 32 KB)
//   stay in L1 while every tile of the chunk runs on them - the 4 weight tiles per step would otherwise stream from
//   L2 at each tile - each tile's partial sums parked in a small buffer between slices, the next slice's weights
//   prefetched into L2 meanwhile (late layers' weights come from memory at every call at batch 1).
// Either way a tile's epilogue runs after the next tile's products (its sums in the other of two buffers): vector
// loads of what the tile store just wrote would wait for it, while the tile unit goes on.
void b_conv_amx(const ConvGeom& g, const BConvPacked& p, const ConvIO& io, const Epilogue& e, const Bf16Storage& st,
                index_t p0, index_t p1, index_t b0, index_t b1) {
  constexpr index_t kSlice = 256;                // im2col values per depth slice
  constexpr index_t kSmallWeights = 128 << 10;  // bytes
  const index_t depth = p.depth;
  const bool sliced = depth > kSlice;
  const bool tile_order = !sliced && g.groups == 1 && (b1 - b0) * p.panel() * 2 <= kSmallWeights;
  // A 1x1 convolution on a bf16 input whose pixels are its rows (stride 1, no padding, every channel, a multiple of
  // 32) reads whole tiles of 16 pixels in place: no gather.
  const bool in_place = st.x && g.taps() == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.H == g.OH &&
                        g.W == g.OW && g.groups == 1 && io.xs == depth && g.Cg == depth;
  const uint16_t* x16 = reinterpret_cast<const uint16_t*>(io.x);
  const index_t chunk_tiles = std::min<index_t>(tiles_per_chunk(depth), sliced ? 16 : 1 << 20);
  const index_t chunk = chunk_tiles * 16, slots = sliced ? 2 * chunk_tiles : 2;
  thread_local Bf16Vector rows;
  thread_local AlignedVector sums;  // 16 x 64 per slot
  if (static_cast<index_t>(rows.size()) < chunk * depth + kGatherSlack)
    rows.resize(static_cast<size_t>(chunk * depth + kGatherSlack));
  if (static_cast<index_t>(sums.size()) < slots * 16 * 64) sums.resize(static_cast<size_t>(slots * 16 * 64));
  struct Pending {
    const float* acc = nullptr;
    index_t px = 0, rows = 0, b = 0;
  } pending;
  auto finish_pending = [&] {
    if (pending.acc) finish_tile(g, p, io, e, st, pending.acc, pending.px, pending.rows, pending.b);
    pending.acc = nullptr;
  };
  // Sums of tile rows a (16 x depth) x block panel w over depth [k0, k1) into the accumulator tiles, from zero or
  // from acc; prefetching `per_step` lines of `next` per step.
  auto products = [&](const uint16_t* a, const uint16_t* w, index_t k0, index_t k1, const float* acc,
                      const char* next, index_t next_bytes, index_t per_step, index_t& fetched) {
    if (k0 == 0)
      zero_sums();
    else
      load_sums(acc);
    for (index_t k = k0; k < k1; k += kBf16Step) {
      for (index_t i = 0; i < per_step && fetched < next_bytes; ++i, fetched += 64)
        _mm_prefetch(next + fetched, _MM_HINT_T1);
      _tile_loadd(4, a + k, depth * 2);
      const uint16_t* wk = w + k * kBf16Block;  // 16 rows of pairs, 256 bytes apart
      _tile_loadd(5, wk, 256);
      _tile_dpbf16ps(0, 4, 5);
      _tile_loadd(6, wk + 32, 256);
      _tile_dpbf16ps(1, 4, 6);
      _tile_loadd(5, wk + 64, 256);
      _tile_dpbf16ps(2, 4, 5);
      _tile_loadd(6, wk + 96, 256);
      _tile_dpbf16ps(3, 4, 6);
    }
  };
  index_t done = 0;  // tiles finished so far (the slot parity where the depth is one slice)
  _tile_loadconfig(&tile_config());
  for (index_t c0 = p0; c0 < p1; c0 += chunk) {
    const index_t c1 = std::min(p1, c0 + chunk);
    if (tile_order) {
      for (index_t px = c0; px < c1; px += 16) {
        const uint16_t* a = rows.data();  // one tile's rows at a time: they stay in L1
        if (in_place && c1 - px >= 16)
          a = x16 + px * depth;
        else
          gather16(g, io, st.x, depth, 0, px, std::min<index_t>(16, c1 - px), rows.data());
        for (index_t b = b0; b < b1; ++b) {
          float* acc = sums.data() + (done & 1) * 16 * 64;
          index_t none = 0;
          products(a, p.w.data() + b * p.panel(), 0, depth, acc, nullptr, 0, 0, none);
          finish_pending();
          store_sums(acc);
          pending = {acc, px, std::min<index_t>(16, c1 - px), b}, ++done;
        }
      }
      continue;
    }
    index_t gathered_grp = -1;
    for (index_t b = b0; b < b1; ++b) {
      const index_t grp = b / p.blocks_per_group;
      if (grp != gathered_grp) {
        for (index_t px = c0; px < c1; px += 16)
          if (!in_place || c1 - px < 16)
            gather16(g, io, st.x, depth, grp, px, std::min<index_t>(16, c1 - px), rows.data() + (px - c0) * depth);
        gathered_grp = grp;
      }
      const uint16_t* w = p.w.data() + b * p.panel();
      for (index_t k0 = 0; k0 < depth; k0 += kSlice) {
        const index_t k1 = std::min(depth, k0 + kSlice);
        const bool same_block = k1 < depth;  // the next slice: this block's, or the next block's first
        const char* next = reinterpret_cast<const char*>(same_block ? w + k1 * kBf16Block : w + p.panel());
        const index_t next_bytes = same_block ? std::min(kSlice, depth - k1) * kBf16Block * 2
                                   : b + 1 < b1 ? std::min(kSlice, depth) * kBf16Block * 2 : 0;
        const index_t per_step = ceil_div(ceil_div(next_bytes, 64), ceil_div(c1 - c0, 16) * ((k1 - k0) / kBf16Step));
        index_t fetched = 0;
        for (index_t px = c0; px < c1; px += 16) {
          const index_t slot = sliced ? (b & 1) * chunk_tiles + (px - c0) / 16 : done & 1;
          float* acc = sums.data() + slot * 16 * 64;
          const uint16_t* a = in_place && c1 - px >= 16 ? x16 + px * depth : rows.data() + (px - c0) * depth;
          products(a, w, k0, k1, acc, next, next_bytes, per_step, fetched);
          finish_pending();
          store_sums(acc);
          if (k1 == depth) pending = {acc, px, std::min<index_t>(16, c1 - px), b}, ++done;
        }
      }
    }
  }
  finish_pending();
  _tile_release();
}

}  // namespace

// Whether this process may use the tile registers: Linux grants the AMX state on request (once per process).
bool amx_permitted() {
  static const bool granted = [] {
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
}

extern const Int8Kernels kInt8Kernels = {kIsaName, L, q_conv_tile_choice, q_quantize, q_conv_amx};
extern const Bf16Kernels kBf16Kernels = {"amx_bf16", b_conv_amx};
}  // namespace amx
}  // namespace convcore
