// Local response normalization across channels (AlexNet / GoogLeNet):
// y = x / (k + alpha / size * sum_{window} x^2) ^ beta, window = [c - before, c + after] clipped to the channels.
// torch uses before = size / 2, after = (size - 1) / 2; ONNX the reverse for even sizes.
#pragma once
#include "core/common.h"

namespace convcore {

void lrn(index_t N, index_t C, index_t inner, index_t size, index_t before, index_t after, double alpha, double beta,
         double k, const float* x, float* y);

}  // namespace convcore
