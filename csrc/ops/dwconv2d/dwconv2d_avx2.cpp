#include "ops/dwconv2d/dwconv2d.h"

namespace convcore {
namespace avx2 {
#define DWCONV_PLANE_NAME f32_dwconv2d_plane_avx2
#define DW_VL 8
#include "ops/dwconv2d/dwconv2d_plane.inc"
}  // namespace avx2
}  // namespace convcore
