#pragma once
// Pieces shared by the sparse products (sparse_gemm.cpp, sparse_rows.cpp):
// counting an operand's exact zeros, the list of positions where either of
// two rows is nonzero, and a 16 x 16 transpose in registers. AVX-512 builds
// only.
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

// Transposes a 16 x 16 block: s rows (stride ls) into d rows (stride ld).
inline void transpose16(const float* s, std::int64_t ls, float* d, std::int64_t ld) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(s + i * ls);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  const auto lo = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  const auto hi = [](__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
  };
  for (int i = 0; i < 16; i += 4) {
    r[i] = lo(t[i], t[i + 2]);
    r[i + 1] = hi(t[i], t[i + 2]);
    r[i + 2] = lo(t[i + 1], t[i + 3]);
    r[i + 3] = hi(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) {
      const int a = i + 8 * j;
      t[a] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0x88);
      t[a + 4] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(d + i * ld, r[i]);
}

}  // namespace tapegrad::detail
#endif
