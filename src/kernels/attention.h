// Softmax attention kernels: causal attention of one head over a block of new tokens, as f32 GEMMs (linear()), and
// one query position's heads over rows they all share (MLA's latent cache in decode).
#pragma once
#include <cstdint>

namespace dm {

// out[i] = Σ_j softmax_j(scale · q_i·k_j) · v_j over positions j ≤ n_past + i, for i < n_new.
// k: [n_past + n_new, dk] rows, v: [n_past + n_new, dv] rows; q: n_new rows of dk floats q_stride apart; out:
// n_new rows of dv floats out_stride apart. Queries go in blocks of 64, each as two GEMMs (scores = Q·Kᵀ,
// out = P·V) against the positions the block can see. A score and an output element are one dot product each,
// so results do not depend on the blocking. Single-threaded: callers share heads among their threads.
void attend_causal_head(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, const float* k, int64_t dk,
                        const float* v, int64_t dv, float scale, float* out, int64_t out_stride);

// out[h] = Σ_j softmax_j(scale · q_h·k_j) · v_j for the heads h < H of one query position that all attend over
// the same n positions: k_j is the dk floats at keys[j], v_j the dv floats at values[j] (a GQA group's KV head; in
// MLA both point at the latent cache row [c_kv | k_pe], whose c_kv is the value). q: H rows of dk floats q_stride
// apart; out: H rows of dv floats out_stride apart. Each key and value is read once per group of up to 8 heads,
// whose sums run side by side; a score is summed in 16 lanes over k as dot() does and an output element over j in
// order, so a head's result does not depend on the grouping. Single-threaded: callers share heads among threads.
void attend_shared_rows(const float* q, int64_t q_stride, int64_t H, const float* const* keys,
                        const float* const* values, int64_t n, int64_t dk, int64_t dv, float scale, float* out,
                        int64_t out_stride);

}  // namespace dm
