// Internal to the Llama-style family (llama.cpp, llama_weights.cpp, qwen3_moe.cpp): the weights of one decoder layer
// and the FFN blocks. Norm weights and biases are converted to f32 at load; linear weights stay in their stored dtype.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/linear.h"
#include "loader/dense_config.h"
#include "loader/weights.h"
#include "model/model.h"

namespace dm {

struct Linear {
  Weight w;                 // [out, in]
  std::vector<float> bias;  // [out], or empty
  // y[n, out] = x[n, in] · wᵀ (+ bias)
  void apply(const float* x, int64_t n, float* y, ThreadPool* pool) const;
  // y[t, r] += bias[r] for t < n and r in [r0, r1) (y: [n, out]); nothing without a bias.
  void add_bias(float* y, int64_t n, int64_t r0, int64_t r1) const;
};

// SwiGLU: down(silu(gate(x)) · up(x)).
struct SwiGlu {
  Linear gate_proj;  // [inter, hidden]
  Linear up_proj;    // [inter, hidden]
  Linear down_proj;  // [hidden, inter]
  // out[n, hidden] = ffn(x[n, hidden]); out must not alias x.
  void apply(const float* x, int64_t n, float* out, ThreadPool* pool) const;
};

// Qwen3-MoE sparse block (transformers Qwen3MoeSparseMoeBlock): softmax over router logits in fp32, top-k,
// renormalised when norm_topk_prob; no shared expert.
struct MoeFfn {
  Weight gate;                  // router [num_experts, hidden]
  std::vector<SwiGlu> experts;  // num_experts, each of width moe_intermediate_size
  int64_t num_experts_per_tok = 0;
  bool norm_topk_prob = false;

  // out[n, hidden] = Σ_k w_k · expert_k(x); routing of each token goes to experts/weights if not null
  // ([n] rows of num_experts_per_tok, best first).
  void apply(const float* x, int64_t n, float* out, ThreadPool* pool, std::vector<std::vector<int32_t>>* experts,
             std::vector<std::vector<float>>* weights) const;
};

struct DecoderLayer {
  std::vector<float> input_layernorm;           // [hidden]
  std::vector<float> post_attention_layernorm;  // [hidden]
  Linear q_proj;                                // [heads * head_dim, hidden] (+ bias)
  Linear k_proj;                                // [kv_heads * head_dim, hidden] (+ bias)
  Linear v_proj;                                // [kv_heads * head_dim, hidden] (+ bias)
  Linear o_proj;                                // [hidden, heads * head_dim] (+ bias)
  std::vector<float> q_norm, k_norm;            // [head_dim] (qwen3), else empty
  bool is_moe = false;
  SwiGlu mlp;  // dense layers
  MoeFfn moe;  // routed layers
};

// Every weight of a model, bound to the store's tensors (which must outlive it), plus size accounting.
struct DenseWeights {
  Weight embed_tokens;  // [vocab, hidden]
  std::vector<DecoderLayer> layers;
  std::vector<float> norm;  // [hidden]
  Weight lm_head;           // [vocab, hidden]; = embed_tokens when tied
  int64_t n_params = 0, n_expert_params = 0;
  int64_t weight_bytes = 0, expert_bytes = 0, embed_bytes = 0;
  std::map<std::string, std::map<std::string, int>> dtypes;  // role -> dtype -> tensor count
};

std::vector<TensorSpec> dense_tensor_specs(const DenseConfig& c);
// Checks every tensor of dense_tensor_specs(c) by name, shape and dtype; throws dm::Error naming it.
DenseWeights bind_dense_weights(const DenseConfig& c, const WeightStore& store);

}  // namespace dm
