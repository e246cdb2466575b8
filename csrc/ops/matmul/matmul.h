// Batched matrix products with numpy broadcasting (ONNX MatMul, Gemm with a computed B):
// C[b] (M x N) = A[b] (M x K) * B[b] (K x N), A[b] at a + a_offsets[b], B[b] at b + b_offsets[b] (row-major).
#pragma once
#include "core/common.h"

namespace convcore {

// The kernels' GEMM on each product as the operands lie (no transposed copy), or
// matmul_ref at Isa::scalar. M, N >= 1; K >= 0 (K == 0 gives zeros).
void matmul(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets, const float* b,
            const index_t* b_offsets, float* c);

// Reference: dot products in double.
void matmul_ref(index_t batch, index_t M, index_t N, index_t K, const float* a, const index_t* a_offsets,
                const float* b, const index_t* b_offsets, float* c);

}  // namespace convcore
