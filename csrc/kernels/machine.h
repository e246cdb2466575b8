// Measured machine limits for benchmarks: the fp32 FMA peak and the memory bandwidth, so that "% of peak" never rests
// on an assumed clock (the same binary runs on AMD Zen and Intel Xeon machines with different clocks and widths).
#pragma once

namespace convcore {

// GFLOP/s of an FMA loop with independent accumulators on `threads` threads for about `seconds`, at the active ISA.
double measure_fma_peak(int threads, double seconds);
// GB/s of a streaming read + write (a copy, counted as 2 bytes moved per byte copied) of `megabytes` on `threads`.
double measure_bandwidth(int threads, double megabytes, int repeats);

namespace avx512 {
double fma_loop(long iterations);  // returns a value that depends on every FMA (so none is optimized away)
}
namespace avx2 {
double fma_loop(long iterations);
}

}  // namespace convcore
