// Masked LSTM batches on torch's unmasked kernel (rnnkit.kernels.held): the kernel's input with the padded
// steps zeroed and one more feature that holds the cell state there, and, for right-padded rows, the kernel's
// outputs turned into Keras's (each row's padded steps repeat its last valid output). One pass each, forward
// and backward, where torch ops take three to five.
//
// Shapes: x (B, T, D), padded (B, T) bool, out (B, T, U), lengths (B,) int64 (each row's valid steps, the
// first ones).

#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

namespace rnnkit_native {

// (b, t) rows of a (B, T, X) tensor whose last dimension is contiguous (any batch and time strides: the
// kernel's batch-first outputs and their gradients are views of time-major memory, read in place).
template <typename T>
struct Rows {
  T* data;
  int64_t sb, st;
  T* operator()(int64_t b, int64_t t) const { return data + b * sb + t * st; }
};

template <typename T>
Rows<T> rows_of(const at::Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0), t.stride(1)};
}

// t itself when its last dimension is contiguous, else a contiguous copy.
inline at::Tensor inner_contiguous(const at::Tensor& t) { return t.stride(2) == 1 ? t : t.contiguous(); }

inline void check_padding(const at::Tensor& x, const at::Tensor& padded) {
  TORCH_CHECK(x.dim() == 3 && padded.dim() == 2 && padded.scalar_type() == at::kBool && padded.size(0) == x.size(0) &&
                  padded.size(1) == x.size(1) && x.device().is_cpu() && padded.device().is_cpu(),
              "rnnkit_native: expected CPU x (B, T, D) and a bool padded (B, T)");
}

// Rows (b, t) of src's first D values into a contiguous (B, T, W) dst, zeros at padded rows; with `flag` (then
// W = D + 1) value D is 1 at padded rows and 0 elsewhere.
inline at::Tensor padded_rows(const at::Tensor& src_in, const at::Tensor& padded, int64_t D, bool flag) {
  check_padding(src_in, padded);
  const at::Tensor src = inner_contiguous(src_in), pc = padded.contiguous();
  const int64_t B = src.size(0), T_ = src.size(1), W = D + (flag ? 1 : 0);
  at::Tensor dst = at::empty({B, T_, W}, src.options());
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "rnnkit_native_padded_rows", [&] {
    const Rows<scalar_t> from = rows_of<scalar_t>(src);
    const bool* p = pc.data_ptr<bool>();
    scalar_t* to = dst.data_ptr<scalar_t>();
    at::parallel_for(0, B * T_, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        scalar_t* d = to + r * W;
        if (p[r]) {
          std::fill(d, d + D, scalar_t(0));
        } else {
          std::memcpy(d, from(r / T_, r % T_), sizeof(scalar_t) * D);
        }
        if (flag) d[D] = p[r] ? scalar_t(1) : scalar_t(0);
      }
    });
  });
  return dst;
}

// (B, T, D + 1): x with zeros at padded steps, then a feature that is 1 there and 0 elsewhere (without
// `hold`: (B, T, D), x with zeros at padded steps).
inline at::Tensor hold_input(const at::Tensor& x, const at::Tensor& padded, bool hold) {
  return padded_rows(x, padded, x.size(2), hold);
}

// The gradient of hold_input: grad (B, T, D + 1) (without `hold`: (B, T, D)) -> (B, T, D), zero at padded steps.
inline at::Tensor hold_input_backward(const at::Tensor& grad, const at::Tensor& padded, bool hold) {
  return padded_rows(grad, padded, grad.size(2) - (hold ? 1 : 0), false);
}

inline void check_lengths(const at::Tensor& out, const at::Tensor& lengths) {
  TORCH_CHECK(out.dim() == 3 && lengths.dim() == 1 && lengths.scalar_type() == at::kLong &&
                  lengths.size(0) == out.size(0) && out.device().is_cpu() && lengths.device().is_cpu(),
              "rnnkit_native: expected CPU out (B, T, U) and int64 lengths (B,)");
}

// [outputs, last] of right-padded rows: last (B, U) each row's output at step length - 1 (zeros for length 0);
// outputs (B, T, U), laid out as out, out on valid steps, and on padded ones last (with `repeat`) or zeros.
inline std::vector<at::Tensor> held_outputs(const at::Tensor& out, const at::Tensor& lengths, bool repeat) {
  check_lengths(out, lengths);
  const at::Tensor oc = inner_contiguous(out), lc = lengths.contiguous();
  const int64_t B = out.size(0), T_ = out.size(1), U = out.size(2);
  at::Tensor outputs = at::empty_like(oc);  // (the same strides: time-major memory stays time-major)
  at::Tensor last = at::empty({B, U}, out.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "rnnkit_native_held_outputs", [&] {
    const Rows<scalar_t> src = rows_of<scalar_t>(oc), dst = rows_of<scalar_t>(outputs);
    const int64_t* len = lc.data_ptr<int64_t>();
    scalar_t* l = last.data_ptr<scalar_t>();
    at::parallel_for(0, B, 8, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = std::clamp<int64_t>(len[b], 0, T_);
        scalar_t* lb = l + b * U;
        if (n > 0) {
          std::memcpy(lb, src(b, n - 1), sizeof(scalar_t) * U);
        } else {
          std::fill(lb, lb + U, scalar_t(0));
        }
        for (int64_t t = 0; t < T_; ++t) {
          scalar_t* d = dst(b, t);
          if (t < n) {
            std::memcpy(d, src(b, t), sizeof(scalar_t) * U);
          } else if (repeat) {
            std::memcpy(d, lb, sizeof(scalar_t) * U);
          } else {
            std::fill(d, d + U, scalar_t(0));
          }
        }
      }
    });
  });
  return {outputs, last};
}

// The gradient of held_outputs with respect to out, laid out with out's `strides`: g_outputs on valid steps,
// zero on padded ones, and at step length - 1 also g_last and (with `repeat`) the sum of g_outputs over the
// padded steps. Undefined gradients are zeros.
inline at::Tensor held_outputs_backward(const std::optional<at::Tensor>& g_outputs, const std::optional<at::Tensor>& g_last,
                                        const at::Tensor& lengths, bool repeat, at::IntArrayRef sizes,
                                        at::IntArrayRef strides) {
  const bool has_out = g_outputs.has_value() && g_outputs->defined();
  const bool has_last = g_last.has_value() && g_last->defined();
  TORCH_CHECK(has_out || has_last, "rnnkit_native: held_outputs_backward needs a gradient");
  const at::Tensor go = has_out ? inner_contiguous(*g_outputs) : at::Tensor();
  const at::Tensor gl = has_last ? g_last->contiguous() : at::Tensor();
  const at::Tensor lc = lengths.contiguous();
  const at::Tensor& any = has_out ? go : gl;
  at::Tensor grad = at::empty_strided(sizes, strides, any.options());
  check_lengths(grad, lengths);
  TORCH_CHECK(grad.stride(2) == 1 && (!has_out || go.sizes() == grad.sizes()),
              "rnnkit_native: held_outputs_backward got mismatched shapes");
  const int64_t B = grad.size(0), T_ = grad.size(1), U = grad.size(2);
  AT_DISPATCH_FLOATING_TYPES(any.scalar_type(), "rnnkit_native_held_outputs_backward", [&] {
    const Rows<scalar_t> g = has_out ? rows_of<scalar_t>(go) : Rows<scalar_t>{nullptr, 0, 0};
    const Rows<scalar_t> dst = rows_of<scalar_t>(grad);
    const scalar_t* glp = has_last ? gl.data_ptr<scalar_t>() : nullptr;
    const int64_t* len = lc.data_ptr<int64_t>();
    at::parallel_for(0, B, 8, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t n = std::clamp<int64_t>(len[b], 0, T_);
        for (int64_t t = 0; t < T_; ++t) {
          scalar_t* d = dst(b, t);
          if (t < n && has_out) {
            std::memcpy(d, g(b, t), sizeof(scalar_t) * U);
          } else {
            std::fill(d, d + U, scalar_t(0));
          }
        }
        if (n == 0) continue;  // (no valid step: nothing reads the row's last output)
        scalar_t* at_last = dst(b, n - 1);
        if (glp) {
          for (int64_t j = 0; j < U; ++j) at_last[j] += glp[b * U + j];
        }
        if (has_out && repeat) {
          for (int64_t t = n; t < T_; ++t) {
            const scalar_t* gt = g(b, t);
            for (int64_t j = 0; j < U; ++j) at_last[j] += gt[j];
          }
        }
      }
    });
  });
  return grad;
}

}  // namespace rnnkit_native
