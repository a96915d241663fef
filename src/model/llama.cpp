// Forward pass of the Llama-style decoder (Qwen2, Llama 3, Qwen3, Qwen3-MoE):
// h = embed(tokens); per layer h += o_proj(attn(rope(q), rope(k), v)) on rms_norm(h), then h += ffn(rms_norm(h));
// logits = lm_head(rms_norm(h)). Grouped-query attention: query head i reads KV head i / (heads / kv_heads).
// Rope: transformers' default inverse frequencies theta^(-2i/d), optionally rescaled by llama3's rule
// (_compute_llama3_parameters), applied with rotate_half (or adjacent pairs for permuted GGUF rows).
#include "model/llama.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/llama_internal.h"
#include "model/packed_weights.h"
#include "model/quantize_load.h"

namespace dm {

namespace {

// inv_freq[i] for i < head_dim/2, in float32 as transformers computes it.
std::vector<float> rope_inv_freq(const DenseConfig& c) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    float e = float(2 * i) / float(c.head_dim);
    f[size_t(i)] = 1.0f / float(std::pow(c.rope_theta, double(e)));
    if (!c.rope_freq_factors.empty()) f[size_t(i)] /= float(c.rope_freq_factors[size_t(i)]);
  }
  if (!c.rope_llama3) return f;
  const auto& s = c.llama3;
  const float factor = float(s.factor), lo = float(s.low_freq_factor), hi = float(s.high_freq_factor);
  const float old_len = float(s.original_max_position_embeddings);
  const float low_freq_wavelen = old_len / lo, high_freq_wavelen = old_len / hi;
  for (auto& inv : f) {
    const float wavelen = float(2 * M_PI) / inv;
    if (wavelen < high_freq_wavelen) continue;  // high frequencies: unchanged
    if (wavelen > low_freq_wavelen) {           // low frequencies: divided by factor
      inv = inv / factor;
      continue;
    }
    const float smooth = (old_len / wavelen - lo) / (hi - lo);  // medium: interpolate
    inv = (1 - smooth) * inv / factor + smooth * inv;
  }
  return f;
}

std::string describe_dtypes(const DenseWeights& w) {
  std::string out;
  for (const auto& [role, counts] : w.dtypes) {
    std::string ds;
    for (const auto& [d, n] : counts) ds += (ds.empty() ? "" : "+") + d;
    out += (out.empty() ? "" : ", ") + role + ds;
  }
  return out;
}

class LlamaModel : public Model {
 public:
  LlamaModel(DenseConfig c, std::shared_ptr<const WeightStore> store, bool pack, bool bf16_acts)
      : c_(std::move(c)), store_(std::move(store)), w_(bind_dense_weights(c_, *store_)), inv_freq_(rope_inv_freq(c_)) {
    if (pack) {
      std::vector<Weight*> ws{&w_.lm_head};
      auto ffn = [&](SwiGlu& f) { ws.insert(ws.end(), {&f.gate_proj.w, &f.up_proj.w, &f.down_proj.w}); };
      for (DecoderLayer& L : w_.layers) {
        ws.insert(ws.end(), {&L.q_proj.w, &L.k_proj.w, &L.v_proj.w, &L.o_proj.w});
        if (!L.is_moe) ffn(L.mlp);
        for (SwiGlu& e : L.moe.experts) ffn(e);
      }
      packed_.pack(ws, store_->files(), bf16_acts);
    }
    info_.architecture = c_.architecture;
    info_.model_type = c_.model_type;
    info_.vocab_size = c_.vocab_size;
    info_.hidden_size = c_.hidden_size;
    info_.n_layers = c_.num_hidden_layers;
    info_.kv_width = c_.kv_width();
    info_.max_context = c_.max_position_embeddings;
    info_.n_params = w_.n_params;
    const double active = c_.num_experts ? double(c_.num_experts_per_tok) / double(c_.num_experts) : 1.0;
    info_.n_active_params = w_.n_params - w_.n_expert_params + int64_t(double(w_.n_expert_params) * active);
    if (!c_.tie_word_embeddings) info_.n_lookup_params = c_.vocab_size * c_.hidden_size;
    info_.weight_bytes = w_.weight_bytes;
    // Decoding reads one embedding row, every dense weight, and k of the experts of each routed layer.
    int64_t per_token = w_.weight_bytes - w_.expert_bytes + int64_t(double(w_.expert_bytes) * active);
    if (!c_.tie_word_embeddings) per_token -= w_.embed_bytes;
    info_.weight_bytes_per_token = per_token;
    info_.eos_token_ids = c_.eos_token_ids;
    info_.bos_token_id = c_.bos_token_id;
    info_.dtype_summary = describe_dtypes(w_);
  }

  const ModelInfo& info() const override { return info_; }
  void forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool* pool,
               ForwardTrace* trace) override;

 private:
  struct Token {
    int32_t seq;
    int64_t pos;
  };
  void check_batch(std::span<const SeqInput> batch, const KvCache& kv) const;
  void attention(int layer, std::span<const SeqInput> batch, const std::vector<Token>& toks, const float* xn,
                 KvCache& kv, float* out, ThreadPool* pool) const;

  DenseConfig c_;
  std::shared_ptr<const WeightStore> store_;  // keeps the mapped weights alive
  DenseWeights w_;
  PackedWeights packed_;  // the packed rows w_ points to (LoadOptions::pack)
  std::vector<float> inv_freq_;  // [head_dim / 2]
  ModelInfo info_;
};

void LlamaModel::check_batch(std::span<const SeqInput> batch, const KvCache& kv) const {
  if (kv.n_layers() != c_.num_hidden_layers || kv.width() != c_.kv_width())
    fail("KV cache has ", kv.n_layers(), " layers of width ", kv.width(), "; ", c_.architecture, " needs ",
         c_.num_hidden_layers, " of width ", c_.kv_width());
  for (size_t s = 0; s < batch.size(); ++s) {
    const SeqInput& in = batch[s];
    if (in.tokens.empty()) fail("sequence ", s, " of the batch has no new tokens");
    if (in.n_past < 0) fail("sequence ", s, ": n_past is negative");
    for (int32_t t : in.tokens)
      if (t < 0 || t >= c_.vocab_size)
        fail("sequence ", s, ": token id ", t, " outside the vocabulary [0, ", c_.vocab_size, ")");
    const int64_t end = in.n_past + int64_t(in.tokens.size());
    const int64_t need = (end + kv.block_size() - 1) / kv.block_size();
    if (int64_t(in.blocks.size()) < need)
      fail("sequence ", s, ": block table has ", in.blocks.size(), " blocks, ", need, " needed for ", end,
           " positions");
    for (int64_t b = 0; b < need; ++b)
      if (in.blocks[size_t(b)] < 0 || in.blocks[size_t(b)] >= kv.n_blocks())
        fail("sequence ", s, ": block id ", in.blocks[size_t(b)], " outside the cache [0, ", kv.n_blocks(), ")");
  }
}

// Grouped-query attention for every new token: q/k/v projections, q/k norms (qwen3), rope, K/V into the cache,
// then causal softmax(q·kᵀ / sqrt(head_dim)) · v over the sequence's cached positions. out: [n, hidden].
void LlamaModel::attention(int layer, std::span<const SeqInput> batch, const std::vector<Token>& toks, const float* xn,
                           KvCache& kv, float* out, ThreadPool* pool) const {
  const DecoderLayer& L = w_.layers[size_t(layer)];
  const int64_t n = int64_t(toks.size()), D = c_.head_dim, H = c_.num_attention_heads, KV = c_.num_key_value_heads;
  const int64_t half = D / 2, group = H / KV;
  std::vector<float> q(size_t(n * H * D)), k(size_t(n * KV * D)), v(size_t(n * KV * D));  // [n, heads * D]
  const float eps = float(c_.rms_norm_eps);
  std::vector<float> cs(size_t(n * half)), sn(size_t(n * half));  // [n, half]: RoPE of each token's position
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = inv_freq_[size_t(i)] * float(toks[size_t(t)].pos);
      cs[size_t(t * half + i)] = std::cos(angle);
      sn[size_t(t * half + i)] = std::sin(angle);
    }
  // Token t's KV heads [g0, g1) and their query heads once projected: biases, q/k norms (qwen3), RoPE, and K/V
  // into the token's cache slot.
  auto finish_heads = [&](int64_t t, int64_t g0, int64_t g1) {
    L.q_proj.add_bias(q.data() + t * H * D, 1, g0 * group * D, g1 * group * D);
    L.k_proj.add_bias(k.data() + t * KV * D, 1, g0 * D, g1 * D);
    L.v_proj.add_bias(v.data() + t * KV * D, 1, g0 * D, g1 * D);
    auto rope = c_.rope_adjacent ? rope_adjacent : rope_halves;
    auto norm_rope = [&](float* x, const std::vector<float>& norm) {
      if (c_.qk_norm) rms_norm(x, norm.data(), D, eps, x);
      rope(x, D, &cs[size_t(t * half)], &sn[size_t(t * half)]);
    };
    for (int64_t h = g0 * group; h < g1 * group; ++h) norm_rope(q.data() + (t * H + h) * D, L.q_norm);
    for (int64_t h = g0; h < g1; ++h) norm_rope(k.data() + (t * KV + h) * D, L.k_norm);
    const SeqInput& in = batch[size_t(toks[size_t(t)].seq)];
    const int64_t p = toks[size_t(t)].pos;
    float* slot = kv.slot(in.blocks[size_t(p / kv.block_size())], layer, int(p % kv.block_size()));
    std::copy(k.begin() + (t * KV + g0) * D, k.begin() + (t * KV + g1) * D, slot + g0 * D);       // K [kv_heads, D]
    std::copy(v.begin() + (t * KV + g0) * D, v.begin() + (t * KV + g1) * D, slot + (KV + g0) * D);  // V [kv_heads, D]
  };
  // One token with a KV head or more for every thread (decode of one sequence): each KV head's chain (its rows
  // of q, k and v, finish_heads, attention) is one work item, so the projections and the attention are one
  // parallel region and what a thread writes is read by itself only, until o_proj (Qwen-1.5B Q4_0 decode, 2
  // threads: +0.9% where the two sit on different core complexes, ±0 on one; docs/performance.md). Where a
  // head's rows would lose their packed layout (weights in column panels), or FP8 rows their 128-row scale
  // blocks, the projections run first over all threads.
  const int n_threads = pool ? pool->size() : 1;
  auto slices = [&](const Weight& w) {
    return (!w.packed || packed_panels(w) == 1) && (w.dtype != DType::F8_E4M3 || D % 128 == 0);
  };
  const bool per_head = n == 1 && n_threads > 1 && KV >= n_threads && slices(L.q_proj.w) && slices(L.k_proj.w) &&
                        slices(L.v_proj.w);
  auto project_head = [&](int64_t g) {
    const LinearJob jobs[3] = {{L.q_proj.w.slice_rows(g * group * D, group * D), xn, 1, q.data() + g * group * D},
                               {L.k_proj.w.slice_rows(g * D, D), xn, 1, k.data() + g * D},
                               {L.v_proj.w.slice_rows(g * D, D), xn, 1, v.data() + g * D}};
    linear_multi(jobs, 3, nullptr);
    finish_heads(0, g, g + 1);
  };
  if (!per_head) {  // q, k, v in one parallel region (their rows spread over all threads)
    const LinearJob jobs[3] = {{L.q_proj.w, xn, n, q.data()}, {L.k_proj.w, xn, n, k.data()},
                               {L.v_proj.w, xn, n, v.data()}};
    linear_multi(jobs, 3, pool);
    for (int64_t t = 0; t < n; ++t) finish_heads(t, 0, KV);
  }

  std::vector<float> attn(size_t(n * H * D));  // [n, heads * D]
  const float scale = 1.0f / std::sqrt(float(D));
  const int bs = kv.block_size();

  // Sequences with many new tokens (prefill): per (sequence, query head), the head's K and V rows gathered from
  // the cache, then blocked GEMMs (attend_causal_head).
  struct Span {
    int64_t row0 = 0, n = 0;  // the sequence's tokens in toks
  };
  std::vector<Span> spans(batch.size());
  for (int64_t t = 0; t < n; ++t) {
    Span& sp = spans[size_t(toks[size_t(t)].seq)];
    if (sp.n == 0) sp.row0 = t;
    ++sp.n;
  }
  constexpr int64_t kGemmMin = 16;  // from this many new tokens of a sequence on; fewer go per token
  auto long_seq = [&](int32_t seq) { return spans[size_t(seq)].n >= kGemmMin; };
  std::vector<std::pair<int32_t, int64_t>> gemm_items;  // (sequence, query head)
  for (size_t sq = 0; sq < batch.size(); ++sq)
    if (long_seq(int32_t(sq)))
      for (int64_t h = 0; h < H; ++h) gemm_items.emplace_back(int32_t(sq), h);
  auto gemm_item = [&](int32_t sq, int64_t h) {
    const SeqInput& in = batch[size_t(sq)];
    const Span sp = spans[size_t(sq)];
    const int64_t g = h / group, n_ctx = in.n_past + sp.n;
    std::vector<float> kh(size_t(n_ctx * D)), vh(size_t(n_ctx * D));
    for (int64_t j = 0; j < n_ctx; ++j) {
      const float* slot = kv.slot(in.blocks[size_t(j / bs)], layer, int(j % bs));
      std::memcpy(&kh[size_t(j * D)], slot + g * D, size_t(D) * sizeof(float));
      std::memcpy(&vh[size_t(j * D)], slot + (KV + g) * D, size_t(D) * sizeof(float));
    }
    attend_causal_head(q.data() + (sp.row0 * H + h) * D, H * D, sp.n, in.n_past, kh.data(), D, vh.data(), D, scale,
                       attn.data() + (sp.row0 * H + h) * D, H * D);
  };

  // Other tokens (decode): one work item per (token, KV head, slice of its query heads): each cached K and V row
  // is read once for all the query heads that share it (GQA), in attend_shared_rows, whose result for a head does
  // not depend on which other heads share the item. Each item reads its own sequence's cache only. A KV head's
  // query heads are split only where there are fewer (token, KV head) pairs than threads: the rows come from
  // memory at the latency of a scattered read, and two threads splitting a KV head each read all of its rows
  // (Qwen-1.5B decode, 2 KV heads on 2 threads: 0.85 ms per token in attention split in 4 items, 0.42 in 2).
  const int64_t n_split = std::clamp<int64_t>((n_threads + n * KV - 1) / (n * KV), 1, group);
  const int64_t per_split = (group + n_split - 1) / n_split;
  auto token_item = [&](int64_t i) {
    const int64_t t = i / (KV * n_split), g = (i / n_split) % KV, sp = i % n_split;
    if (long_seq(toks[size_t(t)].seq)) return;
    const int64_t h0 = g * group + sp * per_split, h1 = std::min(g * group + group, h0 + per_split);
    if (h0 >= h1) return;
    const SeqInput& in = batch[size_t(toks[size_t(t)].seq)];
    const int64_t ctx = toks[size_t(t)].pos + 1, nh = h1 - h0;
    std::vector<const float*> keys(static_cast<size_t>(ctx)), values(static_cast<size_t>(ctx));
    for (int64_t j = 0; j < ctx; ++j) {
      const float* slot = kv.slot(in.blocks[size_t(j / bs)], layer, int(j % bs));
      keys[size_t(j)] = slot + g * D;
      values[size_t(j)] = slot + (KV + g) * D;
    }
    attend_shared_rows(q.data() + (t * H + h0) * D, D, nh, keys.data(), values.data(), ctx, D, D, scale,
                       attn.data() + (t * H + h0) * D, D);
  };
  // Items are taken from one counter (long ones first), so uneven causal lengths do not leave a thread idle.
  const int64_t n_gemm = int64_t(gemm_items.size()), n_items = n_gemm + n * KV * n_split;
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) {
      if (i < n_gemm)
        gemm_item(gemm_items[size_t(i)].first, gemm_items[size_t(i)].second);
      else if (per_head)  // n_split is 1: item g is KV head g
        project_head(i - n_gemm), token_item(i - n_gemm);
      else
        token_item(i - n_gemm);
    }
  };
  if (pool && pool->size() > 1 && n_items > 1)
    pool->run_elastic(work);
  else
    work(0);
  L.o_proj.apply(attn.data(), n, out, pool);
}

void LlamaModel::forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool* pool,
                         ForwardTrace* trace) {
  check_batch(batch, kv);
  const int64_t hd = c_.hidden_size;
  std::vector<Token> toks;
  std::vector<int64_t> logit_rows;  // token indices whose logits are wanted, in batch order
  for (size_t s = 0; s < batch.size(); ++s) {
    const SeqInput& in = batch[s];
    for (size_t j = 0; j < in.tokens.size(); ++j) {
      if (in.logits == Logits::All || (in.logits == Logits::Last && j + 1 == in.tokens.size()))
        logit_rows.push_back(int64_t(toks.size()));
      toks.push_back({int32_t(s), in.n_past + int64_t(j)});
    }
  }
  const int64_t n = int64_t(toks.size());

  std::vector<float> x(size_t(n * hd)), xn(size_t(n * hd)), y(size_t(n * hd));  // [n, hidden]
  int64_t t = 0;
  for (const SeqInput& in : batch)
    for (int32_t tok : in.tokens) dequantize_rows(w_.embed_tokens, tok, tok + 1, x.data() + (t++) * hd);
  if (trace) {
    trace->hidden.assign(1, x);
    trace->experts.assign(size_t(c_.num_hidden_layers), {});
    trace->weights.assign(size_t(c_.num_hidden_layers), {});
  }

  const float eps = float(c_.rms_norm_eps);
  for (int l = 0; l < c_.num_hidden_layers; ++l) {
    const DecoderLayer& L = w_.layers[size_t(l)];
    for (int64_t i = 0; i < n; ++i) rms_norm(x.data() + i * hd, L.input_layernorm.data(), hd, eps, xn.data() + i * hd);
    attention(l, batch, toks, xn.data(), kv, y.data(), pool);
    for (int64_t i = 0; i < n * hd; ++i) x[size_t(i)] += y[size_t(i)];

    for (int64_t i = 0; i < n; ++i)
      rms_norm(x.data() + i * hd, L.post_attention_layernorm.data(), hd, eps, xn.data() + i * hd);
    if (L.is_moe) {
      L.moe.apply(xn.data(), n, y.data(), pool, trace ? &trace->experts[size_t(l)] : nullptr,
                  trace ? &trace->weights[size_t(l)] : nullptr);
    } else {
      L.mlp.apply(xn.data(), n, y.data(), pool);
    }
    for (int64_t i = 0; i < n * hd; ++i) x[size_t(i)] += y[size_t(i)];
    if (trace) trace->hidden.push_back(x);
  }

  if (logit_rows.empty()) return;
  const int64_t m = int64_t(logit_rows.size());
  std::vector<float> h(size_t(m * hd));  // [rows, hidden]
  for (int64_t r = 0; r < m; ++r)
    rms_norm(x.data() + logit_rows[size_t(r)] * hd, w_.norm.data(), hd, eps, h.data() + r * hd);
  linear(w_.lm_head, h.data(), m, logits, pool);
}

}  // namespace

bool is_llama_family(const std::string& model_type) { return is_dense_model_type(model_type); }

std::unique_ptr<Model> load_llama(const JsonConfig& config, std::shared_ptr<const WeightStore> weights,
                                  const LoadOptions& opts) {
  DenseConfig c = parse_dense_config(config);
  weights = quantize_linear_weights(std::move(weights), dense_tensor_specs(c), opts.quant);
  return std::make_unique<LlamaModel>(std::move(c), std::move(weights), opts.pack, opts.bf16_activations);
}

}  // namespace dm
