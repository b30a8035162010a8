// rnnkit's native recurrent kernel: the whole time loop of one direction in C++.
//
// Registered as torch ops (TORCH_LIBRARY rnnkit_native): forward, backward and infer of
// LSTM, GRU (reset gate after the recurrent product) and SimpleRNN (tanh, relu),
// with Keras's masking rules and go_backwards, in torch.nn's gate order and
// weight layout. The input projection (x W_ih^T + b_ih) of every step is made
// by the caller (one matrix product); this file runs only the recurrence:
//
//   rec_s = h_{s-1} W_hh^T + b_hh                (raw loops, or one BLAS call
//                                                  per step for big batches)
//   LSTM  i f g o = sig, sig, tanh, sig (xp_t + rec_s)
//         c_s = f * c_{s-1} + i * g,   h_s = o * tanh(c_s)
//   GRU   r = sig(xr + hr), z = sig(xz + hz), n = tanh(xn + r * hn)
//         h_s = (1 - z) * n + z * h_{s-1}
//   RNN   h_s = tanh | relu (xp_t + rec_s)
//
// s is the processing step; t = s, or T-1-s with go_backwards (outputs are in
// processing order). A row whose mask is False at t keeps its states and
// repeats its previous output (zero with zero_output; zero before any output).
//
// Shapes: xp (B, T, G*U) contiguous, whh_t (U, G*U) (W_hh transposed) in the
// forward and whh (G*U, U) in the backward, h0/c0 (B, U), mask (B, T) bool.
// The forward returns [out (B, T, U), h_T, c_T, H (T+1, B, U), C (T+1, B, U),
// act (T, B, K)] where H/C are the states before/after each step and act the
// gate activations the backward reads (LSTM: i f g o tanh(c), K = 5U; GRU:
// its two sigmoid gates in the weights' order, then n hn, K = 4U; 0 for RNN).
// Mode 4 is the GRU with Keras's gate order (z r h) instead of torch's. Without `save` H/C hold two alternating slots
// and act is empty. `project` makes the input projection xp from x (B, T, D),
// W_ih^T (D, G*U) and b_ih; `infer` (inference, nothing saved) runs `project`
// and the forward in one call and returns [out, h_T] (LSTM: [out, h_T, c_T]):
// training and inference project with the same arithmetic. `step` (a Python
// function of the built module, not an op) is `infer` for one step without a
// mask, for streaming calls. A row's recurrence
// never reads another row: the threads (at::parallel_for, OpenMP: built with
// -fopenmp, else the pragma is ignored and it runs serially) each run the whole
// time loop for a block of rows; with one BLAS call per step, rows run in
// parallel chunks within each step.
//
// Beside this file: activations.h (the gate activations, vectorized), gemm.h
// (the register-blocked product and the split of rows among threads) and
// padding.h (masked LSTM batches on torch's unmasked kernel: its held input and
// outputs, rnnkit.kernels.held).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "activations.h"
#include "gemm.h"
#include "padding.h"

namespace {

using namespace rnnkit_native;

// kGRUKeras: the GRU with its gate blocks in Keras's order (z r h: update, reset, candidate) in the weights, the
// projected input and every gradient, where kGRU has torch's (r z n): a Keras GRU's weights run without reordering.
constexpr int64_t kLSTM = 0, kGRU = 1, kTanh = 2, kRelu = 3, kGRUKeras = 4;

bool is_gru(int64_t mode) { return mode == kGRU || mode == kGRUKeras; }
int64_t gates_of(int64_t mode) { return mode == kLSTM ? 4 : is_gru(mode) ? 3 : 1; }
// Offsets of the reset and update gate blocks in a GRU's gate order.
int64_t reset_at(int64_t mode, int64_t U) { return mode == kGRUKeras ? U : 0; }
int64_t update_at(int64_t mode, int64_t U) { return mode == kGRUKeras ? 0 : U; }

// One row through one step. r: the row's recurrent product plus b_hh (N values, overwritten with the gates),
// xb: its projected input, hb/cb: its states (cb: LSTM only), hnb/cnb: where the new ones go, tmp: U scratch
// values (GRU), ab: where the gate activations the backward reads go (null: not kept).
template <typename T>
inline void cell_row(int64_t mode, int64_t U, int64_t N, T* r, const T* xb, const T* hb, const T* cb, T* hnb, T* cnb,
                     T* tmp, T* ab) {
  if (mode == kLSTM) {  // r becomes the gates i f g o
    add_(r, xb, N);
    sigmoid_(r, 2 * U);
    tanh_(r + 2 * U, U);
    sigmoid_(r + 3 * U, U);
    for (int64_t j = 0; j < U; ++j) cnb[j] = r[U + j] * cb[j] + r[j] * r[2 * U + j];
    std::memcpy(hnb, cnb, sizeof(T) * U);
    tanh_(hnb, U);
    if (ab) {
      std::memcpy(ab, r, sizeof(T) * N);
      std::memcpy(ab + N, hnb, sizeof(T) * U);  // tanh(c)
    }
    for (int64_t j = 0; j < U; ++j) hnb[j] *= r[3 * U + j];
  } else if (is_gru(mode)) {  // the reset and update parts of r become the gates; tmp: n
    const T* rg = r + reset_at(mode, U);
    const T* zg = r + update_at(mode, U);
    add_(r, xb, 2 * U);
    sigmoid_(r, 2 * U);
    T* n = tmp;
    for (int64_t j = 0; j < U; ++j) n[j] = xb[2 * U + j] + rg[j] * r[2 * U + j];
    tanh_(n, U);
    for (int64_t j = 0; j < U; ++j) hnb[j] = n[j] + zg[j] * (hb[j] - n[j]);
    if (ab) {
      std::memcpy(ab, r, sizeof(T) * 2 * U);
      std::memcpy(ab + 2 * U, n, sizeof(T) * U);
      std::memcpy(ab + 3 * U, r + 2 * U, sizeof(T) * U);
    }
  } else if (mode == kTanh) {
    for (int64_t j = 0; j < U; ++j) hnb[j] = xb[j] + r[j];
    tanh_(hnb, U);
  } else {
    for (int64_t j = 0; j < U; ++j) { const T p = xb[j] + r[j]; hnb[j] = p > T(0) ? p : T(0); }
  }
}

template <typename T>
void forward_impl(const at::Tensor& xp, const at::Tensor& whh_t, const at::Tensor& bhh, const at::Tensor& mask,
                  int64_t mode, bool go_backwards, bool zero_output, bool blas, bool save, at::Tensor& out,
                  at::Tensor& H, at::Tensor& C, at::Tensor& act) {
  const int64_t B = xp.size(0), T_ = xp.size(1), N = xp.size(2), U = H.size(2);
  const T* x = xp.data_ptr<T>();
  const T* w = whh_t.data_ptr<T>();
  const T* bias = bhh.defined() ? bhh.data_ptr<T>() : nullptr;
  const bool* m = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  T* o = out.data_ptr<T>();
  T* hs = H.data_ptr<T>();
  T* cs = C.defined() ? C.data_ptr<T>() : nullptr;
  T* a = save && act.size(2) > 0 ? act.data_ptr<T>() : nullptr;
  const int64_t K = act.size(2);
  at::Tensor rec_t = at::empty({B, N}, xp.options());
  T* rec = rec_t.data_ptr<T>();
  at::Tensor bias_row = blas && bhh.defined() ? bhh.unsqueeze(0) : at::Tensor();
  std::vector<T> zeros(N, T(0));
  const int64_t grain = row_grain(U, N);
  const int64_t slots = H.size(0);  // T+1 (the history the backward reads) or 2 (inference: alternating)
  // rows [b0, b1) through step s (their recurrent product too, unless one BLAS call made it for all rows)
  auto step_rows = [&](int64_t s, int64_t b0, int64_t b1, T* tmp) {
    const int64_t t = go_backwards ? T_ - 1 - s : s;
    const int64_t cur = s % slots, nxt = (s + 1) % slots;
    const T* h = hs + cur * B * U;
    T* hn = hs + nxt * B * U;
    if (!blas) gemm_rows(h + b0 * U, U, b1 - b0, U, w, N, rec + b0 * N, N, bias ? bias : zeros.data());
    for (int64_t b = b0; b < b1; ++b) {
      const T* hb = h + b * U;
      T* hnb = hn + b * U;
      T* ob = o + (b * T_ + s) * U;
      if (m && !m[b * T_ + t]) {  // masked: carry the states, repeat the previous output
        std::memcpy(hnb, hb, sizeof(T) * U);
        if (cs) std::memcpy(cs + (nxt * B + b) * U, cs + (cur * B + b) * U, sizeof(T) * U);
        if (zero_output || s == 0) std::memset(ob, 0, sizeof(T) * U);
        else std::memcpy(ob, ob - U, sizeof(T) * U);
        continue;
      }
      T* ab = a ? a + (s * B + b) * K : nullptr;
      cell_row<T>(mode, U, N, rec + b * N, x + (b * T_ + t) * N, hb, cs ? cs + (cur * B + b) * U : nullptr, hnb,
                  cs ? cs + (nxt * B + b) * U : nullptr, tmp, ab);
      std::memcpy(ob, hnb, sizeof(T) * U);
    }
  };
  if (blas) {
    for (int64_t s = 0; s < T_; ++s) {
      at::Tensor hv = H.select(0, s % slots);
      if (bias) at::addmm_out(rec_t, bias_row, hv, whh_t); else at::mm_out(rec_t, hv, whh_t);
      auto rows = [&](int64_t b0, int64_t b1) {
        std::vector<T> tmp(U);
        step_rows(s, b0, b1, tmp.data());
      };
      if (B > grain) at::parallel_for(0, B, grain, rows); else rows(0, B);
    }
  } else {
    over_rows(B, T_ * U * N, [&](int64_t b0, int64_t b1) {
      std::vector<T> tmp(U);
      for (int64_t s = 0; s < T_; ++s) step_rows(s, b0, b1, tmp.data());
    });
  }
}

// Slot 0 of a state buffer (slots, B, U) from the initial state (B, U).
void first_slot(at::Tensor& buffer, const at::Tensor& state) {
  if (state.is_contiguous() && state.scalar_type() == buffer.scalar_type() && state.size(0) == buffer.size(1) &&
      state.size(1) == buffer.size(2))
    std::memcpy(buffer.data_ptr(), state.data_ptr(), state.numel() * state.element_size());
  else
    buffer.select(0, 0).copy_(state);
}

// The loop over projected inputs. With `save` the whole state history is kept (T+1 slots) with the
// gate activations, for the backward; without it two alternating slots hold the states.
std::vector<at::Tensor> rnn_forward(const at::Tensor& xp, const at::Tensor& whh_t, const std::optional<at::Tensor>& bhh,
                                    const at::Tensor& h0, const std::optional<at::Tensor>& c0,
                                    const std::optional<at::Tensor>& mask, int64_t mode, bool go_backwards,
                                    bool zero_output, bool blas, bool save) {
  TORCH_CHECK(xp.dim() == 3 && xp.is_contiguous(), "rnnkit_native: xp must be a contiguous (B, T, G*U) tensor");
  TORCH_CHECK(xp.device().is_cpu(), "rnnkit_native: CPU tensors only");
  const int64_t B = xp.size(0), T_ = xp.size(1), U = h0.size(1), G = gates_of(mode);
  TORCH_CHECK(xp.size(2) == G * U && whh_t.size(0) == U && whh_t.size(1) == G * U && whh_t.is_contiguous(),
              "rnnkit_native: weight shapes do not match the mode");
  TORCH_CHECK(h0.size(0) == B, "rnnkit_native: h0 must be (B, U)");
  auto opts = xp.options();
  const int64_t slots = save ? T_ + 1 : 2;
  at::Tensor out = at::empty({B, T_, U}, opts);
  at::Tensor H = at::empty({slots, B, U}, opts);
  first_slot(H, h0);
  at::Tensor C;
  if (mode == kLSTM) {
    TORCH_CHECK(c0.has_value() && c0->defined(), "rnnkit_native: LSTM needs c0");
    C = at::empty({slots, B, U}, opts);
    first_slot(C, *c0);
  }
  const int64_t K = !save ? 0 : mode == kLSTM ? 5 * U : is_gru(mode) ? 4 * U : 0;
  at::Tensor act = at::empty({save ? T_ : 0, B, K}, opts);
  at::Tensor b = bhh.has_value() ? bhh->contiguous() : at::Tensor();
  at::Tensor mk = mask.has_value() ? mask->contiguous() : at::Tensor();
  if (mk.defined()) TORCH_CHECK(mk.scalar_type() == at::kBool && mk.size(0) == B && mk.size(1) == T_,
                                "rnnkit_native: mask must be a (B, T) bool tensor");
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnkit_native_forward", [&] {
    forward_impl<scalar_t>(xp, whh_t, b, mk, mode, go_backwards, zero_output, blas, save, out, H, C, act);
  });
  at::Tensor hT = H.select(0, T_ % slots);  // views of the state buffer (no copy)
  if (!C.defined()) return {out, hT, act, H, act, act};  // (act: an empty stand-in for C)
  return {out, hT, C.select(0, T_ % slots), H, C, act};
}

// Projections up to this many multiply-adds run on the register-blocked loop (no BLAS call to set up):
// the one-step calls of streaming inference, for one.
constexpr int64_t kSmallProjection = int64_t(1) << 16;

// x (B, T, D) W_ih^T + b_ih as a contiguous (B, T, N), from w_ih_t = W_ih^T (D, N) contiguous.
at::Tensor project(const at::Tensor& x, const at::Tensor& w_ih_t, const std::optional<at::Tensor>& b_ih) {
  TORCH_CHECK(x.dim() == 3 && w_ih_t.dim() == 2 && w_ih_t.size(0) == x.size(2) && w_ih_t.is_contiguous() &&
              x.scalar_type() == w_ih_t.scalar_type(), "rnnkit_native: x must be (B, T, D) and w_ih_t (D, N)");
  const int64_t B = x.size(0), T_ = x.size(1), D = x.size(2), N = w_ih_t.size(1);
  const at::Tensor xc = x.contiguous();
  if (B * T_ * D * N > kSmallProjection) {
    const at::Tensor flat = xc.view({B * T_, D});
    return (b_ih.has_value() ? at::addmm(*b_ih, flat, w_ih_t) : at::mm(flat, w_ih_t)).view({B, T_, N});
  }
  at::Tensor xp = at::empty({B, T_, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_native_project", [&] {
    std::vector<scalar_t> zeros;
    at::Tensor bc;
    const scalar_t* bias;
    if (b_ih.has_value()) {
      bc = b_ih->contiguous();
      bias = bc.data_ptr<scalar_t>();
    } else {
      zeros.assign(N, scalar_t(0));
      bias = zeros.data();
    }
    gemm_rows<scalar_t>(xc.data_ptr<scalar_t>(), D, B * T_, D, w_ih_t.data_ptr<scalar_t>(), N,
                        xp.data_ptr<scalar_t>(), N, bias);
  });
  return xp;
}

// Inference in one call (nothing saved, no autograd): the input projection x W_ih^T + b_ih, then the
// loop; returns [out, h_T] (LSTM: [out, h_T, c_T]). w_ih_t: W_ih^T (D, G*U) contiguous.
std::vector<at::Tensor> rnn_infer(const at::Tensor& x, const at::Tensor& w_ih_t, const std::optional<at::Tensor>& b_ih,
                                  const at::Tensor& whh_t, const std::optional<at::Tensor>& bhh, const at::Tensor& h0,
                                  const std::optional<at::Tensor>& c0, const std::optional<at::Tensor>& mask,
                                  int64_t mode, bool go_backwards, bool zero_output, bool blas) {
  const at::Tensor xp = project(x, w_ih_t, b_ih);
  std::vector<at::Tensor> r = rnn_forward(xp, whh_t, bhh, h0, c0, mask, mode, go_backwards, zero_output, blas, false);
  r.resize(mode == kLSTM ? 3 : 2);
  return r;
}

// One step of streaming inference: what `infer` gives for a one-step input without a mask (the same
// arithmetic, to the bit), with fewer allocations and no state buffers. x (B, 1, D); h0, c0 (B, U) contiguous
// (c0: LSTM only). Returns [out, h_1] (LSTM: [out, h_1, c_1]); out is (B, 1, U) with `sequences`, else (B, U),
// a tensor of its own (not the state).
std::vector<at::Tensor> rnn_step(const at::Tensor& x, const at::Tensor& w_ih_t, const std::optional<at::Tensor>& b_ih,
                                 const at::Tensor& whh_t, const std::optional<at::Tensor>& bhh, const at::Tensor& h0,
                                 const std::optional<at::Tensor>& c0, int64_t mode, bool sequences) {
  TORCH_CHECK(mode >= kLSTM && mode <= kGRUKeras, "rnnkit_native: step got an unknown mode");
  TORCH_CHECK(x.dim() == 3 && x.size(1) == 1 && h0.dim() == 2,
              "rnnkit_native: step takes a (B, 1, D) input and (B, U) states");
  const int64_t B = x.size(0), U = h0.size(1), N = gates_of(mode) * U;
  const bool lstm = mode == kLSTM;
  // (called from Python without the dispatcher: every tensor is checked here, as the ops' schemas and kernels do)
  auto plain = [&](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == x.scalar_type() && !t.is_neg() && !t._is_zerotensor() &&
           t.layout() == at::kStrided;
  };
  TORCH_CHECK(plain(x) && plain(w_ih_t) && plain(whh_t) && plain(h0) && (!c0.has_value() || plain(*c0)) &&
              (!b_ih.has_value() || plain(*b_ih)) && (!bhh.has_value() || plain(*bhh)),
              "rnnkit_native: step takes dense CPU tensors of one floating dtype");
  TORCH_CHECK(w_ih_t.dim() == 2 && w_ih_t.size(1) == N && whh_t.dim() == 2 && whh_t.size(0) == U &&
              whh_t.size(1) == N && whh_t.is_contiguous() && (!b_ih.has_value() || b_ih->numel() == N) &&
              (!bhh.has_value() || bhh->numel() == N),
              "rnnkit_native: step's weights must be w_ih_t (D, G*U), a contiguous whh_t (U, G*U) and biases of G*U");
  TORCH_CHECK(h0.size(0) == B && h0.is_contiguous() &&
              (!lstm || (c0.has_value() && c0->sizes() == h0.sizes() && c0->is_contiguous())),
              "rnnkit_native: step's states must be contiguous (B, U) tensors of the input's dtype");
  const at::Tensor xp = project(x, w_ih_t, b_ih);
  auto opts = x.options();
  at::Tensor out = sequences ? at::empty({B, 1, U}, opts) : at::empty({B, U}, opts);
  at::Tensor hn = at::empty({B, U}, opts);
  at::Tensor cn = lstm ? at::empty({B, U}, opts) : at::Tensor();
  const at::Tensor b = bhh.has_value() ? bhh->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_native_step", [&] {
    using T = scalar_t;
    const T* xq = xp.data_ptr<T>();
    const T* w = whh_t.data_ptr<T>();
    const T* h = h0.data_ptr<T>();
    const T* c = lstm ? c0->data_ptr<T>() : nullptr;
    T* hp = hn.data_ptr<T>();
    T* cp = lstm ? cn.data_ptr<T>() : nullptr;
    T* o = out.data_ptr<T>();
    std::vector<T> zeros(b.defined() ? 0 : N, T(0));
    const T* bias = b.defined() ? b.data_ptr<T>() : zeros.data();
    over_rows(B, U * N, [&](int64_t b0, int64_t b1) {
      std::vector<T> rec((b1 - b0) * N), tmp(U);
      gemm_rows(h + b0 * U, U, b1 - b0, U, w, N, rec.data(), N, bias);
      for (int64_t r = b0; r < b1; ++r) {
        cell_row<T>(mode, U, N, rec.data() + (r - b0) * N, xq + r * N, h + r * U, c ? c + r * U : nullptr,
                    hp + r * U, cp ? cp + r * U : nullptr, tmp.data(), nullptr);
        std::memcpy(o + r * U, hp + r * U, sizeof(T) * U);
      }
    });
  });
  if (lstm) return {out, hn, cn};
  return {out, hn};
}

template <typename T>
void backward_impl(const at::Tensor& grad_out, const at::Tensor& H, const at::Tensor& C, const at::Tensor& act,
                   const at::Tensor& whh, const at::Tensor& mask, int64_t mode, bool go_backwards, bool zero_output,
                   bool blas, at::Tensor& dh, at::Tensor& dc, at::Tensor& dxp, at::Tensor& dZ) {
  const int64_t B = grad_out.size(0), T_ = grad_out.size(1), U = grad_out.size(2), N = dxp.size(2);
  const T* go = grad_out.data_ptr<T>();
  const T* hs = H.data_ptr<T>();
  const T* cs = mode == kLSTM ? C.data_ptr<T>() : nullptr;
  const T* a = act.size(2) > 0 ? act.data_ptr<T>() : nullptr;
  const T* w = whh.data_ptr<T>();
  const bool* m = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  const int64_t K = act.size(2);
  T* dhp = dh.data_ptr<T>();
  T* dcp = mode == kLSTM ? dc.data_ptr<T>() : nullptr;
  T* dx = dxp.data_ptr<T>();
  T* dz = dZ.data_ptr<T>();
  std::vector<T> dprev(B * U, T(0));
  const int64_t grain = row_grain(U, N);
  // rows [b0, b1) back through step s (their dh += dz W_hh too, unless one BLAS call makes it for all rows)
  auto step_rows = [&](int64_t s, int64_t b0, int64_t b1, T* g) {
    const int64_t t = go_backwards ? T_ - 1 - s : s;
    for (int64_t b = b0; b < b1; ++b) {
      T* dpb = dprev.data() + b * U;
      const T* gob = go + (b * T_ + s) * U;
      for (int64_t j = 0; j < U; ++j) g[j] = gob[j] + dpb[j];
      T* dhb = dhp + b * U;
      T* dzb = dz + (s * B + b) * N;
      T* dxb = dx + (b * T_ + t) * N;
      if (m && !m[b * T_ + t]) {  // masked: states pass through; the output was the previous one (or zero)
        if (zero_output) std::memset(dpb, 0, sizeof(T) * U); else std::memcpy(dpb, g, sizeof(T) * U);
        std::memset(dzb, 0, sizeof(T) * N);  // no gate gradients at this step
        std::memset(dxb, 0, sizeof(T) * N);
        continue;
      }
      std::memset(dpb, 0, sizeof(T) * U);
      const T* ab = a + (s * B + b) * K;
      if (mode == kLSTM) {
        const T* cprev = cs + (s * B + b) * U;
        T* dcb = dcp + b * U;
        for (int64_t j = 0; j < U; ++j) {
          const T i = ab[j], f = ab[U + j], gg = ab[2 * U + j], o = ab[3 * U + j];
          const T dhn = dhb[j] + g[j];
          const T tc = ab[4 * U + j];
          const T dct = dcb[j] + dhn * o * (T(1) - tc * tc);
          dzb[j] = dct * gg * i * (T(1) - i);
          dzb[U + j] = dct * cprev[j] * f * (T(1) - f);
          dzb[2 * U + j] = dct * i * (T(1) - gg * gg);
          dzb[3 * U + j] = dhn * tc * o * (T(1) - o);
          dcb[j] = dct * f;
          dhb[j] = T(0);
        }
        std::memcpy(dxb, dzb, sizeof(T) * N);
      } else if (is_gru(mode)) {
        const T* hb = hs + (s * B + b) * U;
        const int64_t ro = reset_at(mode, U), zo = update_at(mode, U);
        for (int64_t j = 0; j < U; ++j) {
          const T r = ab[ro + j], z = ab[zo + j], n = ab[2 * U + j], hnj = ab[3 * U + j];
          const T dhn = dhb[j] + g[j];
          const T dnp = dhn * (T(1) - z) * (T(1) - n * n);
          const T drp = dnp * hnj * r * (T(1) - r);
          const T dzp = dhn * (hb[j] - n) * z * (T(1) - z);
          dxb[ro + j] = drp; dxb[zo + j] = dzp; dxb[2 * U + j] = dnp;
          dzb[ro + j] = drp; dzb[zo + j] = dzp; dzb[2 * U + j] = dnp * r;
          dhb[j] = dhn * z;
        }
      } else {
        const T* hnew = hs + ((s + 1) * B + b) * U;
        for (int64_t j = 0; j < U; ++j) {
          const T dhn = dhb[j] + g[j];
          const T y = hnew[j];
          dzb[j] = mode == kTanh ? dhn * (T(1) - y * y) : (y > T(0) ? dhn : T(0));
          dhb[j] = T(0);
        }
        std::memcpy(dxb, dzb, sizeof(T) * N);
      }
    }
    // dh += dz W_hh for these rows (masked rows: dz is zero)
    if (!blas) gemm_rows(dz + (s * B + b0) * N, N, b1 - b0, N, w, U, dhp + b0 * U, U, static_cast<const T*>(nullptr));
  };
  if (blas) {
    for (int64_t s = T_ - 1; s >= 0; --s) {
      auto rows = [&](int64_t b0, int64_t b1) {
        std::vector<T> g(U);
        step_rows(s, b0, b1, g.data());
      };
      if (B > grain) at::parallel_for(0, B, grain, rows); else rows(0, B);
      dh.addmm_(dZ.select(0, s), whh);
    }
  } else {
    over_rows(B, T_ * U * N, [&](int64_t b0, int64_t b1) {
      std::vector<T> g(U);
      for (int64_t s = T_ - 1; s >= 0; --s) step_rows(s, b0, b1, g.data());
    });
  }
}

std::vector<at::Tensor> rnn_backward(const at::Tensor& grad_out, const at::Tensor& grad_hT,
                                     const std::optional<at::Tensor>& grad_cT, const at::Tensor& H,
                                     const at::Tensor& C, const at::Tensor& act, const at::Tensor& whh,
                                     const std::optional<at::Tensor>& mask, int64_t mode, bool go_backwards,
                                     bool zero_output, bool blas, bool has_bias) {
  const int64_t T_ = grad_out.size(1), B = grad_out.size(0), U = grad_out.size(2), N = gates_of(mode) * U;
  TORCH_CHECK(whh.size(0) == N && whh.size(1) == U, "rnnkit_native: whh must be (G*U, U)");
  TORCH_CHECK(act.size(2) == (mode == kLSTM ? 5 * U : is_gru(mode) ? 4 * U : act.size(2)),
              "rnnkit_native: the forward did not save what the backward needs (save=False)");
  auto opts = grad_out.options();
  at::Tensor go = grad_out.contiguous();
  at::Tensor w = whh.contiguous();
  at::Tensor dh = grad_hT.contiguous().clone();
  at::Tensor dc = mode == kLSTM ? (grad_cT.has_value() ? grad_cT->contiguous().clone() : at::zeros({B, U}, opts))
                                : at::empty({0}, opts);
  at::Tensor dxp = at::empty({B, T_, N}, opts);  // (every row is written: masked steps' rows with zeros)
  at::Tensor dZ = at::empty({T_, B, N}, opts);
  at::Tensor mk = mask.has_value() ? mask->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "rnnkit_native_backward", [&] {
    backward_impl<scalar_t>(go, H, C, act, w, mk, mode, go_backwards, zero_output, blas, dh, dc, dxp, dZ);
  });
  at::Tensor flat = dZ.view({T_ * B, N});
  at::Tensor dwhh = at::mm(flat.t(), H.narrow(0, 0, T_).reshape({T_ * B, U}));
  at::Tensor dbhh = has_bias ? flat.sum(0) : at::empty({0}, opts);
  return {dxp, dwhh, dbhh, dh, dc};
}

}  // namespace

TORCH_LIBRARY(rnnkit_native, m) {
  m.def("forward(Tensor xp, Tensor whh_t, Tensor? bhh, Tensor h0, Tensor? c0, Tensor? mask, int mode, "
        "bool go_backwards, bool zero_output, bool blas, bool save) -> Tensor[]");
  m.def("project(Tensor x, Tensor w_ih_t, Tensor? b_ih) -> Tensor");
  m.def("infer(Tensor x, Tensor w_ih_t, Tensor? b_ih, Tensor whh_t, Tensor? bhh, Tensor h0, Tensor? c0, Tensor? mask, "
        "int mode, bool go_backwards, bool zero_output, bool blas) -> Tensor[]");
  m.def("backward(Tensor grad_out, Tensor grad_hT, Tensor? grad_cT, Tensor H, Tensor C, Tensor act, Tensor whh, "
        "Tensor? mask, int mode, bool go_backwards, bool zero_output, bool blas, bool has_bias) -> Tensor[]");
  m.def("hold_input(Tensor x, Tensor padded, bool hold) -> Tensor");
  m.def("hold_input_backward(Tensor grad, Tensor padded, bool hold) -> Tensor");
  m.def("held_outputs(Tensor out, Tensor lengths, bool repeat) -> Tensor[]");
  m.def("held_outputs_backward(Tensor? g_outputs, Tensor? g_last, Tensor lengths, bool repeat, int[] sizes, "
        "int[] strides) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit_native, CPU, m) {
  m.impl("forward", &rnn_forward);
  m.impl("project", &project);
  m.impl("infer", &rnn_infer);
  m.impl("backward", &rnn_backward);
  m.impl("hold_input", &rnnkit_native::hold_input);
  m.impl("hold_input_backward", &rnnkit_native::hold_input_backward);
  m.impl("held_outputs", &rnnkit_native::held_outputs);
  m.impl("held_outputs_backward", &rnnkit_native::held_outputs_backward);
}

// The eager one-step entry, called from Python without the dispatcher (its boxing of the arguments costs more
// than the step): rnnkit.kernels.native.step_call. Not an op: torch.compile and torch.export never see it.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // (the GIL is released while it runs, as the dispatcher's ops do)
  m.def("step", &rnn_step, "one step of streaming inference (rnn_step)", py::call_guard<py::gil_scoped_release>());
}
