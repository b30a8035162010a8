// rnnkit's native kernel (rnn.cpp): the gate activations over arrays, vectorized.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace rnnkit_native {

// Activations over arrays, written so that the compiler vectorizes the loops. float uses a polynomial
// exp (Cephes expf: within 2 ulp on [-87, 88]) and tanh (an odd polynomial below 0.625, through exp
// above), the same code for one float and for a vector of eight; double calls libm.
using v8f = float __attribute__((vector_size(32)));
using v8i = int32_t __attribute__((vector_size(32)));

// exp(x) = 2^n * p(r) with n = round(x / ln 2) (the 1.5 * 2^23 trick rounds) and r = x - n ln 2
template <typename V>
inline V exp_poly(V x, V& n) {
  n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const V r = x - n * 0.693359375f + n * 2.12194440e-4f;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

// tanh(x) for |x| < 0.625
template <typename V>
inline V tanh_poly(V x) {
  const V z = x * x;
  return ((((z * -5.70498872745e-3f + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
          3.33332819422e-1f) * z * x + x;
}

inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n;
  const float p = exp_poly(x, n);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float sigmoid1(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
inline double sigmoid1(double x) { return 1.0 / (1.0 + std::exp(-x)); }

inline float tanh1(float x) {
  return (x < 0.625f && x > -0.625f) ? tanh_poly(x) : 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f);
}
inline double tanh1(double x) { return std::tanh(x); }

inline v8f splat(float a) { return v8f{a, a, a, a, a, a, a, a}; }
inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof(v)); }

inline v8f exp8(v8f x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  v8f n;
  const v8f p = exp_poly(x, n);
  const v8i bits = (__builtin_convertvector(n, v8i) + 127) << 23;
  return p * reinterpret_cast<const v8f&>(bits);
}

inline v8f sigmoid8(v8f x) { return 1.0f / (1.0f + exp8(-x)); }

inline v8f tanh8(v8f x) {
  return (x < splat(0.625f)) & (x > splat(-0.625f)) ? tanh_poly(x) : 1.0f - 2.0f / (exp8(2.0f * x) + 1.0f);
}

template <typename T>
inline void sigmoid_(T* v, int64_t n) { for (int64_t j = 0; j < n; ++j) v[j] = sigmoid1(v[j]); }
template <typename T>
inline void tanh_(T* v, int64_t n) { for (int64_t j = 0; j < n; ++j) v[j] = tanh1(v[j]); }
template <>
inline void sigmoid_(float* v, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) store8(v + j, sigmoid8(load8(v + j)));
  for (; j < n; ++j) v[j] = sigmoid1(v[j]);
}
template <>
inline void tanh_(float* v, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) store8(v + j, tanh8(load8(v + j)));
  for (; j < n; ++j) v[j] = tanh1(v[j]);
}
template <typename T>
inline void add_(T* v, const T* w, int64_t n) { for (int64_t j = 0; j < n; ++j) v[j] += w[j]; }

}  // namespace rnnkit_native
