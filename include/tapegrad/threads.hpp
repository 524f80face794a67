#pragma once
// Threads used by the matrix kernels (oneDNN's OpenMP pool and OpenBLAS).
// Tapes themselves are per thread and take no locks.
namespace tapegrad {

// Sets the number of threads the calling thread uses for matrix products and
// optimiser updates; n <= 0 means all cores. Each thread has its own setting.
void set_num_threads(int n);
int num_threads();
// "onednn" or "openblas": the float32 matrix-multiply backend of this build.
const char* float_gemm_backend();

}  // namespace tapegrad
