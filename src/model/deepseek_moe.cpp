// DeepSeekMoE FFN: router (softmax or sigmoid scores in fp32; selection by score + e_score_correction_bias with
// noaux_tc; groups scored by top-2 sum (noaux_tc) or max (group_limited_greedy)), routed SwiGLU experts weighted by
// the unbiased scores (optionally renormalised, times routed_scaling_factor), plus the shared experts.
// Reference: DeepSeek-V3 inference/model.py, classes Gate and MoE; ../shared/DESIGN.md "MoE FFN".
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/deepseek_model.h"

namespace dm {

void mlp_forward(const MlpWeights& m, const float* x, int64_t T, float* out, ThreadPool* pool) {
  const int64_t width = m.gate_proj.rows;
  const std::unique_ptr<float[]> g(new float[size_t(T * width)]), u(new float[size_t(T * width)]);  // [T, width]
  const LinearJob jobs[2] = {{m.gate_proj, x, T, g.get()}, {m.up_proj, x, T, u.get()}};  // one parallel region
  linear_multi(jobs, 2, pool);
  silu_mul(g.get(), u.get(), T * width, g.get());
  linear(m.down_proj, g.get(), T, out, pool);
}

namespace {

// Indices of the k largest values of v[0..n), best first; ties go to the lower index.
void top_k(const float* v, int64_t n, int64_t k, int32_t* out) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  std::copy(order.begin(), order.begin() + k, out);
}

}  // namespace

void moe_route(const DeepseekConfig& c, const std::vector<float>& bias, const float* logits, int32_t* idx, float* w) {
  const int64_t n = c.n_routed_experts, k = c.num_experts_per_tok;
  std::vector<float> s(logits, logits + n);  // scores, what the weights are taken from
  if (c.scoring_func == ScoringFunc::Softmax)
    softmax(s.data(), n);
  else
    for (float& v : s) v = 1.0f / (1.0f + std::exp(-v));
  std::vector<float> b = s;  // selection scores
  if (!bias.empty())
    for (int64_t e = 0; e < n; ++e) b[size_t(e)] += bias[size_t(e)];

  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) {
    const int64_t per = n / c.n_group;
    std::vector<float> gs(static_cast<size_t>(c.n_group));
    for (int64_t g = 0; g < c.n_group; ++g) {
      const float* bg = &b[size_t(g * per)];
      if (c.topk_method == TopkMethod::NoauxTc) {
        int32_t t2[2];
        top_k(bg, per, 2, t2);
        gs[size_t(g)] = bg[t2[0]] + bg[t2[1]];
      } else {
        gs[size_t(g)] = *std::max_element(bg, bg + per);
      }
    }
    std::vector<int32_t> keep(static_cast<size_t>(c.topk_group));
    top_k(gs.data(), c.n_group, c.topk_group, keep.data());
    std::vector<bool> kept(static_cast<size_t>(c.n_group), false);
    for (int32_t g : keep) kept[size_t(g)] = true;
    for (int64_t e = 0; e < n; ++e)
      if (!kept[size_t(e / per)]) b[size_t(e)] = -std::numeric_limits<float>::infinity();
  }
  top_k(b.data(), n, k, idx);
  float sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    w[j] = s[size_t(idx[j])];
    sum += w[j];
  }
  for (int64_t j = 0; j < k; ++j) {
    if (c.norm_topk_prob) w[j] /= sum;
    w[j] *= float(c.routed_scaling_factor);
  }
}

// x: [T, hidden] -> out: [T, hidden]. Tokens routed to an expert are gathered and run through it in one batch;
// each token then sums its experts in ascending expert order (as the reference's loop over experts does), so a
// token's result does not depend on which other tokens share the batch.
void DeepseekModel::moe(int il, const float* x, int64_t T, float* out, ThreadPool* pool, ForwardTrace* trace) {
  const MoeWeights& m = layers[size_t(il)].moe;
  const int64_t D = c.hidden_size, n = c.n_routed_experts, k = c.num_experts_per_tok;

  std::vector<float> gate_logits(static_cast<size_t>(T * n));  // [T, n_routed_experts], fp32
  linear(m.gate, x, T, gate_logits.data(), pool);
  std::vector<int32_t> idx(static_cast<size_t>(T * k));  // [T, k]
  std::vector<float> w(static_cast<size_t>(T * k));      // [T, k]
  for (int64_t t = 0; t < T; ++t) moe_route(c, m.e_score_correction_bias, &gate_logits[size_t(t * n)], &idx[size_t(t * k)], &w[size_t(t * k)]);
  if (trace) {
    auto& te = trace->experts[size_t(il)];
    auto& tw = trace->weights[size_t(il)];
    for (int64_t t = 0; t < T; ++t) {
      te.emplace_back(&idx[size_t(t * k)], &idx[size_t(t * k + k)]);
      tw.emplace_back(&w[size_t(t * k)], &w[size_t(t * k + k)]);
    }
  }

  // rows_of[e]: the (token, slot) entries t*k + j routed to expert e, in token order. Experts run in ascending id,
  // so each token accumulates its experts in that order whatever else is in the batch.
  std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(n));
  for (int64_t r = 0; r < T * k; ++r) rows_of[size_t(idx[size_t(r)])].push_back(r);
  // All active experts (and the shared ones) run together: one linear_multi for every gate and up projection, one
  // for every down projection, so in decode their rows spread over all threads with two fork-joins, and in prefill
  // each expert is one GEMM over its gathered tokens. Expert e's rows start at off[e] in the packed buffers.
  const int64_t W = c.moe_intermediate_size;
  std::vector<int64_t> off(static_cast<size_t>(n + 1), 0);
  for (int64_t e = 0; e < n; ++e) off[size_t(e + 1)] = off[size_t(e)] + int64_t(rows_of[size_t(e)].size());
  // Every element is written before it is read (gathered rows, projections' outputs): left uninitialized, as
  // zeroing these ~80 MB per layer in a 512-token prefill costs more than some of the GEMMs.
  auto uninit = [](int64_t n) { return std::unique_ptr<float[]>(new float[size_t(n)]); };
  const auto xe = uninit(T * k * D), ye = uninit(T * k * D);  // [T*k, hidden]
  const auto g = uninit(T * k * W), u = uninit(T * k * W);    // [T*k, moe_intermediate_size]
  const int64_t Ws = m.has_shared ? m.shared_experts.gate_proj.rows : 0;
  const auto gs = uninit(T * Ws), us = uninit(T * Ws);        // [T, shared width]
  std::vector<LinearJob> jobs;
  for (int64_t e = 0; e < n; ++e) {
    const auto& rows = rows_of[size_t(e)];
    if (rows.empty()) continue;
    const int64_t ne = int64_t(rows.size()), o = off[size_t(e)];
    // An expert that every token chose (each of decode's experts) reads x itself: a token picks an expert at most
    // once, so its rows are all tokens in order. The jobs that read the same x share one quantization of it.
    const float* xin = x;
    if (ne < T) {
      for (int64_t r = 0; r < ne; ++r)
        std::memcpy(xe.get() + (o + r) * D, x + (rows[size_t(r)] / k) * D, size_t(D) * sizeof(float));
      xin = xe.get() + o * D;
    }
    const MlpWeights& ex = m.experts[size_t(e)];
    jobs.push_back({ex.gate_proj, xin, ne, g.get() + o * W});
    jobs.push_back({ex.up_proj, xin, ne, u.get() + o * W});
  }
  if (m.has_shared) {
    jobs.push_back({m.shared_experts.gate_proj, x, T, gs.get()});
    jobs.push_back({m.shared_experts.up_proj, x, T, us.get()});
  }
  linear_multi(jobs.data(), jobs.size(), pool);
  silu_mul(g.get(), u.get(), T * k * W, g.get());
  if (m.has_shared) silu_mul(gs.get(), us.get(), T * Ws, gs.get());
  jobs.clear();
  for (int64_t e = 0; e < n; ++e) {
    const int64_t ne = off[size_t(e + 1)] - off[size_t(e)], o = off[size_t(e)];
    if (ne) jobs.push_back({m.experts[size_t(e)].down_proj, g.get() + o * W, ne, ye.get() + o * D});
  }
  if (m.has_shared)
    jobs.push_back({m.shared_experts.down_proj, gs.get(), T, out});
  else
    std::memset(out, 0, size_t(T * D) * sizeof(float));
  linear_multi(jobs.data(), jobs.size(), pool);

  std::vector<float> routed(size_t(T * D), 0.0f);  // [T, hidden]: Σ w · expert(x), experts in ascending id
  for (int64_t e = 0; e < n; ++e) {
    const auto& rows = rows_of[size_t(e)];
    for (size_t r = 0; r < rows.size(); ++r)
      axpy(w[size_t(rows[r])], ye.get() + (off[size_t(e)] + int64_t(r)) * D, D, &routed[size_t((rows[r] / k) * D)]);
  }
  for (int64_t i = 0; i < T * D; ++i) out[i] = routed[size_t(i)] + out[i];
}

}  // namespace dm
