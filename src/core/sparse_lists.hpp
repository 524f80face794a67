#pragma once
// Pieces shared by the sparse products (sparse_gemm.cpp, sparse_rows.cpp):
// counting an operand's exact zeros, and the list of positions where either
// of two rows is nonzero. AVX-512 builds only.
#if defined(__AVX512F__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // inside GCC 12's AVX-512 headers
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

namespace tapegrad::detail {

// Lanes [0, len - i) of a 16-lane vector starting at i.
inline __mmask16 live_lanes(std::int64_t len, std::int64_t i) {
  return static_cast<__mmask16>(len - i >= 16 ? 0xFFFF : (1u << (len - i)) - 1);
}

// Exact zeros among rows [r0, r1) of a matrix of `cols` columns.
inline std::int64_t count_zeros(const float* a, std::int64_t lda, std::int64_t r0, std::int64_t r1,
                                std::int64_t cols) {
  std::int64_t zeros = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t i = 0; i < cols; i += 16) {
      const __mmask16 live = live_lanes(cols, i);
      zeros += __builtin_popcount(_mm512_mask_cmpeq_ps_mask(
          live, _mm512_maskz_loadu_ps(live, a + r * lda + i), _mm512_setzero_ps()));
    }
  return zeros;
}

// The positions i < len where r0[i] or r1[i] is nonzero (r1 may be null: a
// row without a partner), into idx, with both values into v0 and v1; returns
// how many. Each array needs 16 spare slots past that count: the lists are
// compressed in registers and stored as whole vectors, because compressing
// straight to memory is microcoded and slow on the machines measured.
inline std::int32_t pair_list(const float* r0, const float* r1, std::int64_t len, std::int32_t* idx,
                              float* v0, float* v1) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  std::int64_t p = 0;
  for (std::int64_t i = 0; i < len; i += 16) {
    const __mmask16 live = live_lanes(len, i);
    const __m512 x0 = _mm512_maskz_loadu_ps(live, r0 + i);
    const __m512 x1 = r1 ? _mm512_maskz_loadu_ps(live, r1 + i) : _mm512_setzero_ps();
    const __mmask16 nz = _mm512_cmpneq_ps_mask(x0, _mm512_setzero_ps()) |
                         _mm512_cmpneq_ps_mask(x1, _mm512_setzero_ps());
    const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(i)), iota);
    _mm512_storeu_si512(idx + p, _mm512_maskz_compress_epi32(nz, at));
    _mm512_storeu_ps(v0 + p, _mm512_maskz_compress_ps(nz, x0));
    _mm512_storeu_ps(v1 + p, _mm512_maskz_compress_ps(nz, x1));
    p += __builtin_popcount(nz);
  }
  return static_cast<std::int32_t>(p);
}

}  // namespace tapegrad::detail
#endif
