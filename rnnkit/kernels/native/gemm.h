// rnnkit's native kernel (rnn.cpp): the register-blocked matrix product (the recurrent product of a step,
// small input projections) and how rows are split among threads.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace rnnkit_native {

// out[r, j] = init[r, j] + sum_k a[r, k] * w[k, j] for r < rows, j < N: the recurrent product without a
// BLAS call. init is `bias` (one row for all) or, when bias is null, out itself (accumulate). w is (K, N)
// row-major, row r of a starts at a + r * lda, of out at out + r * ldo. Blocks of R rows by CV vectors
// of columns keep their sums in registers (GCC/Clang vector extensions: 64 bytes where -march=native
// finds AVX-512, else 32); leftover columns run scalar.
#ifdef __AVX512F__
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif

template <typename T>
struct Simd {
  typedef T type __attribute__((vector_size(kVectorBytes)));
  static constexpr int width = kVectorBytes / sizeof(T);
  static type load(const T* p) { type v; std::memcpy(&v, p, sizeof(v)); return v; }
  static void store(T* p, type v) { std::memcpy(p, &v, sizeof(v)); }
};

template <typename T, int R, int CV>
inline void gemm_block(const T* a, int64_t lda, int64_t K, const T* w, int64_t N, T* out, int64_t ldo,
                       const T* bias, int64_t j0) {
  using S = Simd<T>;
  constexpr int W = S::width;
  typename S::type acc[R][CV];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < CV; ++c) acc[r][c] = S::load(bias ? bias + j0 + c * W : out + r * ldo + j0 + c * W);
  for (int64_t k = 0; k < K; ++k) {
    const T* wk = w + k * N + j0;
    typename S::type wv[CV];
    for (int c = 0; c < CV; ++c) wv[c] = S::load(wk + c * W);
    for (int r = 0; r < R; ++r) {
      const T ak = a[r * lda + k];
      for (int c = 0; c < CV; ++c) acc[r][c] += ak * wv[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < CV; ++c) S::store(out + r * ldo + j0 + c * W, acc[r][c]);
}

// All rows for the columns [j0, j0 + CV * width): blocks of 4 rows, then single rows. Column blocks are
// the outer loop, so that one block of w (K x CV vectors) stays in L1 while every row block reads it.
template <typename T, int CV>
inline void gemm_columns(const T* a, int64_t lda, int64_t rows, int64_t K, const T* w, int64_t N, T* out,
                         int64_t ldo, const T* bias, int64_t j0) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) gemm_block<T, 4, CV>(a + r * lda, lda, K, w, N, out + r * ldo, ldo, bias, j0);
  for (; r < rows; ++r) gemm_block<T, 1, CV>(a + r * lda, lda, K, w, N, out + r * ldo, ldo, bias, j0);
}

template <typename T>
void gemm_rows(const T* a, int64_t lda, int64_t rows, int64_t K, const T* w, int64_t N, T* out, int64_t ldo,
               const T* bias) {
  constexpr int W = Simd<T>::width;
  int64_t j0 = 0;
  for (; j0 + 4 * W <= N; j0 += 4 * W) gemm_columns<T, 4>(a, lda, rows, K, w, N, out, ldo, bias, j0);
  for (; j0 + W <= N; j0 += W) gemm_columns<T, 1>(a, lda, rows, K, w, N, out, ldo, bias, j0);
  for (; j0 < N; ++j0) {  // leftover columns
    for (int64_t r = 0; r < rows; ++r) {
      T sum = bias ? bias[j0] : out[r * ldo + j0];
      for (int64_t k = 0; k < K; ++k) sum += a[r * lda + k] * w[k * N + j0];
      out[r * ldo + j0] = sum;
    }
  }
}

// Rows per parallel chunk of one step (BLAS mode): enough work (about 2^18 multiply-adds) to pay for a handoff.
inline int64_t row_grain(int64_t U, int64_t N) { return std::max<int64_t>(4, (int64_t(1) << 18) / std::max<int64_t>(1, U * N)); }

// fn(b0, b1) over the rows [0, B) in blocks of 4 (the register-blocked product's height), split among the
// threads when the call has at least 2^18 multiply-adds (`work_per_row` each). A row's recurrence never
// reads another row, so a thread runs the whole time loop for its rows: one handoff per call, none per step.
template <typename F>
void over_rows(int64_t B, int64_t work_per_row, const F& fn) {
  const int64_t blocks = (B + 3) / 4;
  if (blocks > 1 && B * work_per_row >= (int64_t(1) << 18))
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) { fn(k0 * 4, std::min(B, k1 * 4)); });
  else
    fn(0, B);
}

}  // namespace rnnkit_native
