#include "ops/dwconv2d/dwconv2d.h"

namespace convcore {
namespace avx512 {
#define DWCONV_PLANE_NAME f32_dwconv2d_plane_avx512
#define DW_VL 16
#include "ops/dwconv2d/dwconv2d_plane.inc"
}  // namespace avx512
}  // namespace convcore
