// Causal softmax attention of one head over a block of new tokens, as f32 GEMMs (linear()).
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

}  // namespace dm
