// Multi-head latent attention (MLA) with the compressed KV cache: per token and layer the cache holds
// c_kv = kv_a_layernorm(c_kv) [kv_lora_rank] and the roped shared key k_pe [qk_rope_head_dim].
// Two equivalent ways to attend: "naive" expands K/V per head with kv_b_proj (cheap for prefill), "absorb" folds
// W_UK into q and W_UV into the output so scores are taken in latent space (cheap for decode).
// Reference: DeepSeek-V3 inference/model.py, class MLA (attn_impl "naive" / "absorb"); RoPE on adjacent pairs.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/deepseek_model.h"

namespace dm {

void DeepseekModel::rope_cos_sin(int64_t pos, float* cos, float* sin) const {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float angle = float(pos) * inv_freq[i];  // fp32 outer product, as torch.outer(t, freqs)
    cos[i] = float(std::cos(double(angle))) * rope_mscale;
    sin[i] = float(std::sin(double(angle))) * rope_mscale;
  }
}

bool DeepseekModel::use_absorb(const SeqRows& s) const {
  if (mla_impl != MlaImpl::Auto) return mla_impl == MlaImpl::Absorb;
  // Multiply-adds of each way: expanding K/V costs n_ctx·E; absorbing costs n_new·E, and attention over the
  // latent is wider (kv_lora_rank + rope + kv_lora_rank per position against qk_head_dim + v_head_dim).
  const double H = double(c.num_attention_heads), n_ctx = double(s.n_past + s.n_new), n_new = double(s.n_new);
  const double E = H * double(c.qk_nope_head_dim + c.v_head_dim) * double(c.kv_lora_rank);
  const double naive = n_ctx * E + n_new * n_ctx * H * double(c.qk_head_dim() + c.v_head_dim);
  const double absorb = n_new * E + n_new * n_ctx * H * double(c.kv_width() + c.kv_lora_rank);
  return absorb < naive;
}

void DeepseekModel::attention(int il, std::span<const SeqRows> seqs, const float* x, int64_t T, float* out,
                              KvCache& kv, ThreadPool* pool) {
  const MlaWeights& a = layers[size_t(il)].attn;
  const int64_t H = c.num_attention_heads, qk = c.qk_head_dim(), nope = c.qk_nope_head_dim;
  const int64_t rope = c.qk_rope_head_dim, lora = c.kv_lora_rank, kvw = c.kv_width();
  const float eps = float(c.rms_norm_eps);

  // q: [T, H, qk_nope | qk_rope]; kva: [T, kv_lora_rank | qk_rope] (c_kv before its norm, k_pe before RoPE).
  // The projections of x run in one parallel region.
  std::vector<float> q(static_cast<size_t>(T * H * qk)), kva(size_t(T * kvw));
  if (c.q_lora_rank) {
    std::vector<float> qa(static_cast<size_t>(T * c.q_lora_rank));  // [T, q_lora_rank]
    const LinearJob jobs[2] = {{a.q_a_proj, x, T, qa.data()}, {a.kv_a_proj_with_mqa, x, T, kva.data()}};
    linear_multi(jobs, 2, pool);
    for (int64_t t = 0; t < T; ++t) {
      float* r = &qa[size_t(t * c.q_lora_rank)];
      rms_norm(r, a.q_a_layernorm.data(), c.q_lora_rank, eps, r);
    }
    linear(a.q_b_proj, qa.data(), T, q.data(), pool);
  } else {
    const LinearJob jobs[2] = {{a.q_proj, x, T, q.data()}, {a.kv_a_proj_with_mqa, x, T, kva.data()}};
    linear_multi(jobs, 2, pool);
  }

  std::vector<float> cos(static_cast<size_t>(rope / 2)), sin(size_t(rope / 2));
  for (const SeqRows& s : seqs)
    for (int64_t i = 0; i < s.n_new; ++i) {
      const int64_t t = s.row0 + i, pos = s.n_past + i;
      rope_cos_sin(pos, cos.data(), sin.data());
      for (int64_t h = 0; h < H; ++h) rope_adjacent(&q[size_t((t * H + h) * qk + nope)], rope, cos.data(), sin.data());
      float* slot = kv.slot(s.blocks[size_t(pos / kv.block_size())], il, int(pos % kv.block_size()));
      const float* src = &kva[size_t(t * kvw)];
      rms_norm(src, a.kv_a_layernorm.data(), lora, eps, slot);
      std::memcpy(slot + lora, src + lora, size_t(rope) * sizeof(float));
      rope_adjacent(slot + lora, rope, cos.data(), sin.data());
    }

  // o: [T, H * v_head_dim], per sequence (batch invariance: a sequence only sees its own cache).
  std::vector<float> o(static_cast<size_t>(T * H * c.v_head_dim));
  for (const SeqRows& s : seqs) {
    if (s.n_new == 0) continue;
    const float* qs = &q[size_t(s.row0 * H * qk)];
    float* os = &o[size_t(s.row0 * H * c.v_head_dim)];
    if (use_absorb(s))
      attend_absorb(s, il, qs, kv, os, pool);
    else
      attend_naive(s, il, qs, kv, os, pool);
  }
  linear(a.o_proj, o.data(), T, out, pool);
}

namespace {

// Pointers to the cache slots of positions [0, n) of one sequence in one layer.
std::vector<const float*> context_slots(KvCache& kv, const SeqRows& s, int il, int64_t n) {
  std::vector<const float*> p(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    p[size_t(j)] = kv.slot(s.blocks[size_t(j / kv.block_size())], il, int(j % kv.block_size()));
  return p;
}

}  // namespace

// q: [n_new, H, qk] of this sequence; o: [n_new, H * v_head_dim].
void DeepseekModel::attend_naive(const SeqRows& s, int il, const float* q, KvCache& kv, float* o, ThreadPool* pool) {
  const MlaWeights& a = layers[size_t(il)].attn;
  const int64_t H = c.num_attention_heads, qk = c.qk_head_dim(), nope = c.qk_nope_head_dim;
  const int64_t rope = c.qk_rope_head_dim, lora = c.kv_lora_rank, vd = c.v_head_dim, kvb_w = nope + vd;
  const int64_t n_ctx = s.n_past + s.n_new;
  const float scale = float(c.softmax_scale());
  const auto ctx = context_slots(kv, s, il, n_ctx);

  // ckv: [n_ctx, kv_lora_rank] -> kvb: [n_ctx, H, k_nope | v]
  std::vector<float> ckv(static_cast<size_t>(n_ctx * lora)), kvb(size_t(n_ctx * H * kvb_w));
  for (int64_t j = 0; j < n_ctx; ++j) std::memcpy(&ckv[size_t(j * lora)], ctx[size_t(j)], size_t(lora) * sizeof(float));
  linear(a.kv_b_proj, ckv.data(), n_ctx, kvb.data(), pool);

  // Per head: K_h = [k_nope | k_pe] and V_h gathered, then blocked GEMMs (attend_causal_head); heads are shared
  // by the threads.
  const int n_threads = pool ? pool->size() : 1;
  auto head_work = [&](int64_t h0, int64_t h1) {
    std::vector<float> kh(size_t(n_ctx * qk)), vh(size_t(n_ctx * vd));
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t j = 0; j < n_ctx; ++j) {
        const float* row = &kvb[size_t((j * H + h) * kvb_w)];
        std::memcpy(&kh[size_t(j * qk)], row, size_t(nope) * sizeof(float));
        std::memcpy(&kh[size_t(j * qk + nope)], ctx[size_t(j)] + lora, size_t(rope) * sizeof(float));
        std::memcpy(&vh[size_t(j * vd)], row + nope, size_t(vd) * sizeof(float));
      }
      attend_causal_head(q + h * qk, H * qk, s.n_new, s.n_past, kh.data(), qk, vh.data(), vd, scale, o + h * vd, H * vd);
    }
  };
  if (pool && n_threads > 1 && H > 1)
    pool->parallel_for(H, head_work);
  else
    head_work(0, H);
}

void DeepseekModel::attend_absorb(const SeqRows& s, int il, const float* q, KvCache& kv, float* o, ThreadPool* pool) {
  const MlaWeights& a = layers[size_t(il)].attn;
  const Weight& wkv_b = a.kv_b_proj;  // [H * (nope + v), kv_lora_rank]
  const int64_t H = c.num_attention_heads, qk = c.qk_head_dim(), nope = c.qk_nope_head_dim;
  const int64_t rope = c.qk_rope_head_dim, lora = c.kv_lora_rank, vd = c.v_head_dim, kvb_w = nope + vd;
  const int64_t kvw = c.kv_width(), n_ctx = s.n_past + s.n_new, n = s.n_new;
  const float scale = float(c.softmax_scale());
  const auto ctx = context_slots(kv, s, il, n_ctx);

  // Each head's chain runs on one thread, in items of up to 8 heads (at least one item per thread where there
  // are heads enough) and up to kTokens tokens: q_lat[h, i, :] = W_UKᵀ[h] · q_nope[i, h]; attention over the
  // latent cache, every head of the item against the same rows [c_kv | k_pe] (the key; c_kv is the value),
  // o_lat[h, i, :] = Σ_j p_j · c_kv[j]; then o[i, h, :] = W_UV[h] · o_lat[h, i] (v_b's rows, or kv_b_proj's v
  // rows of the head in place). A head needs no other head's results, so the three steps are one parallel region
  // and what a thread writes is read by itself only: two fork-joins fewer per layer than a region per step, and
  // no line written on one core complex read on another (V2-Lite Q4_0 decode, 2 threads: +1.7% / +2.7% in the
  // high / usual phase, docs/performance.md). Results do not depend on the thread count: a head's do not depend
  // on the other heads of its item, and the token split is fixed (the bf16 paths of linear() round batches of
  // 16 or more tokens, so a token's result may depend on its batch).
  std::vector<float> qn(static_cast<size_t>(H * n * nope)), q_lat(size_t(H * n * lora)), o_lat(size_t(H * n * lora));
  std::vector<float> qc(static_cast<size_t>(n * H * kvw)), oh(size_t(H * n * vd));  // [n, H, kvw], [H, n, vd]
  const int n_threads = pool ? pool->size() : 1;
  const int64_t per_item = std::clamp<int64_t>((H + n_threads - 1) / n_threads, 1, 8);
  constexpr int64_t kTokens = 16;
  const int64_t head_items = (H + per_item - 1) / per_item, n_items = head_items * ((n + kTokens - 1) / kTokens);
  auto item = [&](int64_t h0, int64_t h1, int64_t i0, int64_t i1) {
    LinearJob jobs[8];
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t i = i0; i < i1; ++i)
        std::memcpy(&qn[size_t((h * n + i) * nope)], q + (i * H + h) * qk, size_t(nope) * sizeof(float));
      jobs[h - h0] = {a.k_b.slice_rows(h * lora, lora), &qn[size_t((h * n + i0) * nope)], i1 - i0,
                      &q_lat[size_t((h * n + i0) * lora)]};
    }
    linear_multi(jobs, size_t(h1 - h0), nullptr);
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t h = h0; h < h1; ++h) {
        float* d = &qc[size_t((i * H + h) * kvw)];
        std::memcpy(d, &q_lat[size_t((h * n + i) * lora)], size_t(lora) * sizeof(float));
        std::memcpy(d + lora, q + (i * H + h) * qk + nope, size_t(rope) * sizeof(float));
      }
    for (int64_t i = i0; i < i1; ++i)
      attend_shared_rows(&qc[size_t((i * H + h0) * kvw)], kvw, h1 - h0, ctx.data(), ctx.data(), s.n_past + i + 1, kvw,
                         lora, scale, &o_lat[size_t((h0 * n + i) * lora)], n * lora);
    for (int64_t h = h0; h < h1; ++h) {
      const Weight wv = a.v_b.data ? a.v_b.slice_rows(h * vd, vd) : wkv_b.slice_rows(h * kvb_w + nope, vd);
      jobs[h - h0] = {wv, &o_lat[size_t((h * n + i0) * lora)], i1 - i0, &oh[size_t((h * n + i0) * vd)]};
    }
    linear_multi(jobs, size_t(h1 - h0), nullptr);
  };
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    for (int64_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) {
      const int64_t h0 = k % head_items * per_item, i0 = k / head_items * kTokens;
      item(h0, std::min(H, h0 + per_item), i0, std::min(n, i0 + kTokens));
    }
  };
  if (n_threads > 1 && n_items > 1)
    pool->run_elastic(work);
  else
    work(0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(o + (i * H + h) * vd, &oh[size_t((h * n + i) * vd)], size_t(vd) * sizeof(float));
}

}  // namespace dm
