#include "kernels/attention.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/clones.h"
#include "kernels/linear.h"
#include "kernels/ops.h"

namespace dm {

namespace {

constexpr int kLanes = 16;
using vec::load16;
using vec::V16;

// out[k] = the sum of v[k]'s 16 lanes for k < M <= 16, each by the tree dot() uses (lane l + lane l+8, then + 4,
// + 2, + 1), so the same bits; the M sums are reduced together, a halving step at a time, in whole vectors (one
// add per step for up to 16 sums) instead of one scalar tree each, which cost more than a 128-wide score's FMAs.
template <int M>
[[gnu::always_inline]] inline void lane_sums(const V16* v, float* out) {
  V16 a[16];
  for (int k = 0; k < 16; ++k) a[k] = k < M ? v[k] : V16{};
  V16 b[8];  // b[i]: lanes 0-7 sum 2i's step, 8-15 sum 2i+1's
  for (int i = 0; i < 8; ++i)
    b[i] = __builtin_shufflevector(a[2 * i], a[2 * i + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(a[2 * i], a[2 * i + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  V16 c[4];  // c[i]: 4 lanes each for sums 4i .. 4i+3
  for (int i = 0; i < 4; ++i)
    c[i] = __builtin_shufflevector(b[2 * i], b[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(b[2 * i], b[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  V16 d[2];  // d[i]: 2 lanes each for sums 8i .. 8i+7
  for (int i = 0; i < 2; ++i)
    d[i] = __builtin_shufflevector(c[2 * i], c[2 * i + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           __builtin_shufflevector(c[2 * i], c[2 * i + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  const V16 e = __builtin_shufflevector(d[0], d[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
                __builtin_shufflevector(d[0], d[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  vec::store16(out, e);
}

// s[g * n + j + r] = scale · q_g·k_{j+r} for G heads and R rows at once (G·R independent 16-lane sums, so that
// the FMA latency is hidden); each sum runs over k in 16 lanes, lanes added in a fixed tree, then the tail.
template <int G, int R>
[[gnu::always_inline]] inline void scores_block(const float* q, int64_t q_stride, const float* const* rows, int64_t j,
                                                int64_t dk, float scale, float* s, int64_t n) {
  V16 acc[G][R] = {};
  int64_t c = 0;
  for (; c + kLanes <= dk; c += kLanes) {
    V16 k[R];
    for (int r = 0; r < R; ++r) k[r] = load16(rows[j + r] + c);
    for (int g = 0; g < G; ++g) {
      const V16 qg = load16(q + g * q_stride + c);
      for (int r = 0; r < R; ++r) acc[g][r] += qg * k[r];
    }
  }
  float sums[kLanes];
  lane_sums<G * R>(&acc[0][0], sums);
  for (int g = 0; g < G; ++g)
    for (int r = 0; r < R; ++r) {
      float sum = sums[g * R + r];
      for (int64_t t = c; t < dk; ++t) sum += q[g * q_stride + t] * rows[j + r][t];
      s[g * n + j + r] = sum * scale;
    }
}

// out[g] = Σ_j p[g * n + j] · v_j for G heads, S 16-lane column slices at a time: the G·S sums (at most 24) stay
// in registers over a block of positions, one load of a row's slice feeds the G heads, and a row's S slices are
// consecutive lines. Positions go in blocks of kRowsV, which stay in L2 while their slices pass (an MLA latent
// row is 2 KiB); the sums carry over in `out`, in position order, so an output element is summed over j in order.
// Rows kAheadV positions on are fetched into L2 as the sums go: a paged cache's rows are scattered, and the
// 2 KiB stride of a GQA slot puts a slice of every row in the same two L1 sets.
constexpr int64_t kRowsV = 128, kAheadV = 16;
template <int G, int S>
[[gnu::always_inline]] inline void values_slices(const float* p, const float* const* values, int64_t n, int64_t j0,
                                                 int64_t j1, int64_t c, float* out, int64_t out_stride) {
  V16 acc[G][S];
  for (int g = 0; g < G; ++g)
    for (int s = 0; s < S; ++s) acc[g][s] = j0 == 0 ? V16{} : load16(out + g * out_stride + c + s * kLanes);
  for (int64_t j = j0; j < j1; ++j) {
    if (j + kAheadV < n)
      for (int s = 0; s < S; ++s) __builtin_prefetch(values[j + kAheadV] + c + s * kLanes, 0, 2);
    V16 v[S];
    for (int s = 0; s < S; ++s) v[s] = load16(values[j] + c + s * kLanes);
    for (int g = 0; g < G; ++g) {
      const float pg = p[g * n + j];
      for (int s = 0; s < S; ++s) acc[g][s] += pg * v[s];
    }
  }
  for (int g = 0; g < G; ++g)
    for (int s = 0; s < S; ++s) vec::store16(out + g * out_stride + c + s * kLanes, acc[g][s]);
}

template <int G>
[[gnu::always_inline]] inline void values_block(const float* p, const float* const* values, int64_t n, int64_t dv,
                                                float* out, int64_t out_stride) {
  constexpr int S = G <= 3 ? 8 : G <= 6 ? 4 : 2;
  for (int64_t j0 = 0; j0 < n; j0 += kRowsV) {
    const int64_t j1 = std::min(n, j0 + kRowsV);
    int64_t c = 0;
    for (; c + S * kLanes <= dv; c += S * kLanes) values_slices<G, S>(p, values, n, j0, j1, c, out, out_stride);
    for (; c + kLanes <= dv; c += kLanes) values_slices<G, 1>(p, values, n, j0, j1, c, out, out_stride);
    for (; c < dv; ++c)
      for (int g = 0; g < G; ++g) {
        float a = j0 == 0 ? 0.0f : out[g * out_stride + c];
        for (int64_t j = j0; j < j1; ++j) a += p[g * n + j] * values[j][c];
        out[g * out_stride + c] = a;
      }
  }
}

constexpr int64_t kAheadK = 8;
template <int G>
[[gnu::always_inline]] inline void attend_group(const float* q, int64_t q_stride, const float* const* rows,
                                                const float* const* values, int64_t n, int64_t dk, int64_t dv,
                                                float scale, float* out, int64_t out_stride, float* s) {
  // The key rows (a paged cache, usually out of the caches in decode) are fetched into L2 kAheadK positions
  // ahead: fetched a pair ahead, the loop waited on memory (Qwen-1.5B's 12 heads over 512 cached positions, one
  // thread: 201 µs a layer, 109 with this and values_block's order). Value rows are read only after the softmax
  // (values_block fetches them): fetched here they would crowd the keys out.
  for (int64_t r = 0; r < std::min(n, kAheadK); ++r)
    for (int64_t c = 0; c < dk; c += 64 / int64_t(sizeof(float))) __builtin_prefetch(rows[r] + c, 0, 2);
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    for (int64_t r = j + kAheadK; r < std::min(n, j + kAheadK + 2); ++r)
      for (int64_t c = 0; c < dk; c += 64 / int64_t(sizeof(float))) __builtin_prefetch(rows[r] + c, 0, 2);
    scores_block<G, 2>(q, q_stride, rows, j, dk, scale, s, n);
  }
  for (; j < n; ++j) scores_block<G, 1>(q, q_stride, rows, j, dk, scale, s, n);
  for (int g = 0; g < G; ++g) softmax(s + g * n, n);
  values_block<G>(s, values, n, dv, out, out_stride);
}

}  // namespace

DM_CLONES void attend_shared_rows(const float* q, int64_t q_stride, int64_t H, const float* const* keys,
                                  const float* const* values, int64_t n, int64_t dk, int64_t dv, float scale, float* out,
                                  int64_t out_stride) {
  if (n <= 0) return;
  std::vector<float> s(size_t(8 * n));  // [heads of the group, n] scores, then probabilities
  for (int64_t h = 0; h < H; h += 8) {
    const float* qh = q + h * q_stride;
    float* oh = out + h * out_stride;
    switch (std::min<int64_t>(8, H - h)) {
#define DM_GROUP(G) \
  case G: attend_group<G>(qh, q_stride, keys, values, n, dk, dv, scale, oh, out_stride, s.data()); break;
      DM_GROUP(1) DM_GROUP(2) DM_GROUP(3) DM_GROUP(4) DM_GROUP(5) DM_GROUP(6) DM_GROUP(7) DM_GROUP(8)
#undef DM_GROUP
    }
  }
}

void attend_causal_head(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, const float* k, int64_t dk,
                        const float* v, int64_t dv, float scale, float* out, int64_t out_stride) {
  constexpr int64_t kBlock = 64;
  const int64_t n_ctx = n_past + n_new;
  std::vector<float> qb(size_t(kBlock * dk)), sc(size_t(kBlock * n_ctx)), vt(size_t(dv * n_ctx)), ob(size_t(kBlock * dv));
  for (int64_t i0 = 0; i0 < n_new; i0 += kBlock) {
    const int64_t nb = std::min(kBlock, n_new - i0), seen = n_past + i0 + nb;  // positions [0, seen)
    for (int64_t d = 0; d < dv; ++d)  // Vᵀ [dv, seen]
      for (int64_t j = 0; j < seen; ++j) vt[size_t(d * seen + j)] = v[j * dv + d];
    for (int64_t i = 0; i < nb; ++i) std::memcpy(&qb[size_t(i * dk)], q + (i0 + i) * q_stride, size_t(dk) * sizeof(float));
    linear(Weight{DType::F32, seen, dk, k, nullptr}, qb.data(), nb, sc.data(), nullptr);
    for (int64_t i = 0; i < nb; ++i) {
      float* row = &sc[size_t(i * seen)];
      const int64_t p = n_past + i0 + i;
      for (int64_t j = 0; j <= p; ++j) row[j] *= scale;
      softmax(row, p + 1);
      std::fill(row + p + 1, row + seen, 0.0f);
    }
    linear(Weight{DType::F32, dv, seen, vt.data(), nullptr}, sc.data(), nb, ob.data(), nullptr);
    for (int64_t i = 0; i < nb; ++i)
      std::memcpy(out + (i0 + i) * out_stride, &ob[size_t(i * dv)], size_t(dv) * sizeof(float));
  }
}

}  // namespace dm
