// The interface every architecture implements, and what the engine and CLI see of a model.
// A forward call takes several independent sequences at once (continuous batching): each brings new tokens,
// the number of tokens it already has in the cache, and its block table. Contracts:
// - forward() writes the KV slots of the new tokens (positions n_past .. n_past+n-1) and reads those of
//   positions < n_past; blocks of a sequence are given by its block table (position p lives in
//   blocks[p / block_size], slot p % block_size). The table must cover every position up to n_past+n.
// - logits rows, in batch order: every new token of a sequence with Logits::All, its last token with
//   Logits::Last, none with Logits::None. Row width is info().vocab_size.
// - Computation of one sequence never depends on the others in the batch (batch invariance, fp32).
// - Not thread-safe: one forward at a time per model; it uses `pool` for its kernels.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/kv_cache.h"

namespace dm {

struct ModelInfo {
  std::string architecture;  // e.g. "DeepseekV3ForCausalLM"
  std::string model_type;    // e.g. "deepseek_v3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int n_layers = 0;           // main-model layers (MTP layers excluded)
  int64_t kv_width = 0;       // floats per token per layer in the KV cache
  int64_t max_context = 0;    // max_position_embeddings
  int64_t n_params = 0;       // total parameters
  int64_t n_active_params = 0;  // parameters used per token (routed experts: only num_experts_per_tok of them)
  int64_t n_lookup_params = 0;  // of n_active_params: an embedding table counted whole though rows are looked up
  int64_t weight_bytes = 0;     // bytes of all weights as stored
  int64_t weight_bytes_per_token = 0;  // bytes of weights read to decode one token
  std::vector<int32_t> eos_token_ids;  // from config.json
  int32_t bos_token_id = -1;
  std::string dtype_summary;  // e.g. "BF16 (lm_head BF16, norms F32)"
};

enum class Logits { Last, All, None };

struct SeqInput {
  std::span<const int32_t> tokens;  // new tokens
  int64_t n_past = 0;               // tokens of this sequence already in the cache
  std::span<const int32_t> blocks;  // block table
  Logits logits = Logits::Last;
};

// Optional per-forward record of routing decisions, for golden tests and debugging:
// experts[layer][row] = the selected experts of that token (batch order of all new tokens); weights likewise.
struct ForwardTrace {
  std::vector<std::vector<std::vector<int32_t>>> experts;
  std::vector<std::vector<std::vector<float>>> weights;
  // hidden[i]: output of block i-1 (0 = embeddings), [n_tokens * hidden]; hidden[n_layers + 1]: final norm output.
  std::vector<std::vector<float>> hidden;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual void forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool* pool,
                       ForwardTrace* trace = nullptr) = 0;
};

struct LoadOptions {
  std::string quant;  // "" (as stored), "q8_0", "q4_0": quantize at load (issue: performance)
  // Q8_0 / Q4_0 linear weights re-laid out for the int8 kernels at load (model/packed_weights.h); false keeps
  // every weight in the mapped file pages as stored.
  bool pack = true;
  // Packed BF16 / F16 weights: prompt batches round activations (and F16 weights) to bf16 for the CPU's bf16 dot
  // products where that is faster (AVX512-BF16 without AMX: twice the f32 rate; llama.cpp rounds activations to
  // the weights' type the same way). false keeps f32 activations everywhere (exact products: the fp32 goldens).
  bool bf16_activations = true;
};

// What a checkpoint of a given config holds: every tensor's name (exact checkpoint string), shape and role.
// The loader checks files against it; `deepmoe synth` writes random weights from it. MTP layers excluded.
struct TensorSpec {
  enum class Kind { Linear, Embedding, Norm, Bias, Router, RouterBias };
  std::string name;
  std::vector<int64_t> shape;
  Kind kind = Kind::Linear;
};
// config_path: a config.json. Throws dm::Error for unsupported configs.
std::vector<TensorSpec> model_tensor_specs(const std::string& config_path);

// Loads the model at `path` (a Hugging Face model directory, or a .gguf file) by its architecture.
// Throws dm::Error naming the file/tensor/field on any problem.
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts = {});

// What the model at `path` is and needs (parameters, bytes, KV size, dtypes) without loading it: from config.json
// and the tensor specs, counting stored dtypes when weights are present (their headers are validated), else the
// dtypes the config announces. Works on a config-only directory.
ModelInfo describe_model(const std::string& path);

}  // namespace dm
