// DeepseekModel: the weights of one DeepSeek checkpoint as views into its WeightStore, and the blocks of the
// forward pass (deepseek.cpp: load + layer loop; deepseek_attention.cpp: MLA; deepseek_moe.cpp: router + experts).
// Internal to src/model; the public entry points are in deepseek.h.
#pragma once
#include <memory>
#include <span>
#include <vector>

#include "kernels/linear.h"
#include "loader/deepseek_config.h"
#include "loader/weights.h"
#include "model/deepseek.h"
#include "model/model.h"
#include "model/packed_weights.h"

namespace dm {

struct MlpWeights {  // SwiGLU: down(silu(gate(x)) · up(x))
  Weight gate_proj;  // [width, hidden]
  Weight up_proj;    // [width, hidden]
  Weight down_proj;  // [hidden, width]
};

struct MlaWeights {
  Weight q_proj;                    // [H * qk_head_dim, hidden]          (q_lora_rank null)
  Weight q_a_proj;                  // [q_lora_rank, hidden]              (q_lora_rank set)
  std::vector<float> q_a_layernorm; // [q_lora_rank]
  Weight q_b_proj;                  // [H * qk_head_dim, q_lora_rank]
  Weight kv_a_proj_with_mqa;        // [kv_lora_rank + qk_rope_head_dim, hidden]
  std::vector<float> kv_a_layernorm;// [kv_lora_rank]
  Weight kv_b_proj;                 // [H * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  // Absorbed attention (decode): W_UKᵀ of every head, [H * kv_lora_rank, qk_nope_head_dim] (GGUF's attn_k_b as
  // stored, else kv_b_proj's k rows transposed at load), and W_UV, [H * v_head_dim, kv_lora_rank] (GGUF's
  // attn_v_b, else null: kv_b_proj's v rows are used in place).
  Weight k_b, v_b;
  Weight o_proj;                    // [hidden, H * v_head_dim]
};

struct MoeWeights {
  Weight gate;                                   // router [n_routed_experts, hidden]
  std::vector<float> e_score_correction_bias;    // [n_routed_experts] (noaux_tc), else empty
  std::vector<MlpWeights> experts;               // n_routed_experts, width moe_intermediate_size
  bool has_shared = false;
  MlpWeights shared_experts;                     // width n_shared_experts * moe_intermediate_size
};

struct DeepseekLayer {
  std::vector<float> input_layernorm;           // [hidden]
  std::vector<float> post_attention_layernorm;  // [hidden]
  MlaWeights attn;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
};

// One sequence's rows in the batch: its new tokens are rows [row0, row0 + n_new) of the activations.
struct SeqRows {
  int64_t row0 = 0, n_new = 0, n_past = 0;
  std::span<const int32_t> blocks;
};

class DeepseekModel : public Model {
 public:
  DeepseekModel(DeepseekConfig c, std::shared_ptr<const WeightStore> store, ModelInfo info);
  const ModelInfo& info() const override { return info_; }
  void forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool* pool,
               ForwardTrace* trace) override;

  DeepseekConfig c;
  std::shared_ptr<const WeightStore> store;
  Weight embed_tokens;  // [vocab, hidden]
  Weight lm_head;       // [vocab, hidden] (embed_tokens when tied)
  std::vector<float> norm;  // [hidden]
  std::vector<DeepseekLayer> layers;
  std::vector<float> inv_freq;  // [qk_rope_head_dim / 2], YaRN-adjusted
  float rope_mscale = 1;        // cos/sin factor m(mscale) / m(mscale_all_dim)
  MlaImpl mla_impl = MlaImpl::Auto;
  PackedWeights packed;  // the packed rows the Weights above point to (LoadOptions::pack)
  std::vector<Buffer> owned;  // k_b built at load

 private:
  // x: [T, hidden] normed input, out: [T, hidden]. Writes the new tokens' latents to `kv`.
  void attention(int il, std::span<const SeqRows> seqs, const float* x, int64_t T, float* out, KvCache& kv,
                 ThreadPool* pool);
  void attend_naive(const SeqRows& s, int il, const float* q, KvCache& kv, float* o, ThreadPool* pool);
  void attend_absorb(const SeqRows& s, int il, const float* q, KvCache& kv, float* o, ThreadPool* pool);
  bool use_absorb(const SeqRows& s) const;
  void rope_cos_sin(int64_t pos, float* cos, float* sin) const;
  // MoE FFN; fills trace rows [0, T) of `layer` when given.
  void moe(int il, const float* x, int64_t T, float* out, ThreadPool* pool, ForwardTrace* trace);

  ModelInfo info_;
};

// Router of one token: gate logits [n_routed_experts] -> the num_experts_per_tok selected experts (best biased
// score first) and their weights. `bias`: e_score_correction_bias, or empty.
void moe_route(const DeepseekConfig& c, const std::vector<float>& bias, const float* logits, int32_t* idx, float* w);
// YaRN-adjusted RoPE inverse frequencies [qk_rope_head_dim / 2] in fp32, as inference/model.py computes them.
std::vector<float> rope_inv_freq(const DeepseekConfig& c);

void mlp_forward(const MlpWeights& m, const float* x, int64_t T, float* out, ThreadPool* pool);

}  // namespace dm
