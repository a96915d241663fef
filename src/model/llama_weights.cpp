// Tensor specs of the Llama-style family (exact HF checkpoint names and shapes) and the checked binding of a
// WeightStore to decoder layers. The spec is the single source of shapes: the loader only names tensors.
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "loader/dense_config.h"
#include "model/llama.h"
#include "model/llama_internal.h"

namespace dm {

namespace {

using Kind = TensorSpec::Kind;

void add_linear(std::vector<TensorSpec>& s, const std::string& name, int64_t out, int64_t in, bool bias,
                Kind kind = Kind::Linear) {
  s.push_back({name + ".weight", {out, in}, kind});
  if (bias) s.push_back({name + ".bias", {out}, Kind::Bias});
}

void add_swiglu(std::vector<TensorSpec>& s, const std::string& p, int64_t hidden, int64_t inter, bool bias) {
  add_linear(s, p + "gate_proj", inter, hidden, bias);
  add_linear(s, p + "up_proj", inter, hidden, bias);
  add_linear(s, p + "down_proj", hidden, inter, bias);
}

}  // namespace

std::vector<TensorSpec> dense_tensor_specs(const DenseConfig& c) {
  const int64_t h = c.hidden_size, d = c.head_dim;
  std::vector<TensorSpec> s;
  s.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Kind::Embedding});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = cat("model.layers.", i, ".");
    s.push_back({p + "input_layernorm.weight", {h}, Kind::Norm});
    add_linear(s, p + "self_attn.q_proj", c.num_attention_heads * d, h, c.qkv_bias);
    add_linear(s, p + "self_attn.k_proj", c.num_key_value_heads * d, h, c.qkv_bias);
    add_linear(s, p + "self_attn.v_proj", c.num_key_value_heads * d, h, c.qkv_bias);
    add_linear(s, p + "self_attn.o_proj", h, c.num_attention_heads * d, c.o_bias);
    if (c.qk_norm) {
      s.push_back({p + "self_attn.q_norm.weight", {d}, Kind::Norm});
      s.push_back({p + "self_attn.k_norm.weight", {d}, Kind::Norm});
    }
    s.push_back({p + "post_attention_layernorm.weight", {h}, Kind::Norm});
    if (c.layer_is_moe(i)) {
      add_linear(s, p + "mlp.gate", c.num_experts, h, false, Kind::Router);
      for (int64_t e = 0; e < c.num_experts; ++e)
        add_swiglu(s, cat(p, "mlp.experts.", e, "."), h, c.moe_intermediate_size, false);
    } else {
      add_swiglu(s, p + "mlp.", h, c.intermediate_size, c.mlp_bias);
    }
  }
  s.push_back({"model.norm.weight", {h}, Kind::Norm});
  if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", {c.vocab_size, h}, Kind::Linear});
  return s;
}

std::vector<TensorSpec> llama_tensor_specs(const JsonConfig& config) {
  return dense_tensor_specs(parse_dense_config(config));
}

ModelInfo llama_config_info(const JsonConfig& config) {
  const DenseConfig c = parse_dense_config(config);
  ModelInfo m;
  m.architecture = c.architecture;
  m.model_type = c.model_type;
  m.vocab_size = c.vocab_size;
  m.hidden_size = c.hidden_size;
  m.n_layers = c.num_hidden_layers;
  m.kv_width = c.kv_width();
  m.max_context = c.max_position_embeddings;
  m.eos_token_ids = c.eos_token_ids;
  m.bos_token_id = c.bos_token_id;
  const std::string dt = c.dtype.empty() ? "bfloat16" : c.dtype;
  const int64_t elem = dt == "float32" ? 4 : 2;
  int64_t expert = 0, embed = 0;
  for (const TensorSpec& t : dense_tensor_specs(c)) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    m.n_params += n;
    if (t.name.find(".mlp.experts.") != std::string::npos) expert += n;
    if (t.kind == Kind::Embedding) embed += n;
  }
  const int64_t active_expert = c.num_experts ? expert / c.num_experts * c.num_experts_per_tok : expert;
  m.n_active_params = m.n_params - expert + active_expert;
  if (!c.tie_word_embeddings) m.n_lookup_params = embed;
  m.weight_bytes = m.n_params * elem;
  // Decoding reads every dense weight, k experts per routed layer, and one embedding row (all of it when tied).
  m.weight_bytes_per_token = (m.n_active_params - (c.tie_word_embeddings ? 0 : embed)) * elem;
  m.dtype_summary = dt + " (from config)";
  return m;
}

namespace {

// Looks tensors up by name, checking them against the spec's shape and the dtypes the kernels accept.
class Binder {
 public:
  Binder(const WeightStore& store, const std::vector<TensorSpec>& specs) : store_(store) {
    for (const auto& s : specs) specs_[s.name] = &s;
  }

  const StoredTensor& tensor(const std::string& name) {
    auto it = specs_.find(name);
    DM_CHECK(it != specs_.end(), "tensor ", name, " is not in the spec");
    const StoredTensor* t = store_.find(name);
    if (!t)
      fail("missing tensor '", name, "' (expected shape ", shape_str(it->second->shape), ")",
           store_.files().empty() ? "" : " in " + store_.files().front()->path());
    if (t->view.shape != it->second->shape)
      fail(t->file, ": tensor '", name, "' has shape ", shape_str(t->view.shape), ", expected ",
           shape_str(it->second->shape));
    used_++;
    return *t;
  }

  Weight weight(const std::string& name) {
    const StoredTensor& t = tensor(name);
    if (!linear_supports(t.view.dtype))
      fail(t.file, ": tensor '", name, "' has dtype ", dtype_name(t.view.dtype), ", which linear layers don't support");
    Weight w;
    w.dtype = t.view.dtype;
    w.rows = t.view.dim(0);
    w.cols = t.view.dim(1);
    w.data = t.view.data;
    if (w.cols % dtype_block(w.dtype) != 0)
      fail(t.file, ": tensor '", name, "' has ", w.cols, " columns, not a multiple of the ", dtype_name(w.dtype),
           " block");
    if (t.view.nbytes != w.bytes())
      fail(t.file, ": tensor '", name, "' holds ", t.view.nbytes, " bytes, expected ", w.bytes());
    if (w.dtype == DType::F8_E4M3) {
      const TensorView& sv =
          store_.get(name + "_scale_inv", {DType::F32}, {(w.rows + 127) / 128, (w.cols + 127) / 128});
      w.scale_inv = sv.f32();
      used_++;
    }
    return w;
  }

  Linear linear(const std::string& name, bool bias) {
    Linear l;
    l.w = weight(name + ".weight");
    if (bias) l.bias = vec(name + ".bias");
    return l;
  }

  SwiGlu swiglu(const std::string& p, bool bias) {
    return {linear(p + "gate_proj", bias), linear(p + "up_proj", bias), linear(p + "down_proj", bias)};
  }

  // Norm weights and biases: any float dtype, converted to f32.
  std::vector<float> vec(const std::string& name) {
    const StoredTensor& t = tensor(name);
    const bool is_float = t.view.dtype == DType::F32 || t.view.dtype == DType::BF16 || t.view.dtype == DType::F16;
    if (!is_float)
      fail(t.file, ": tensor '", name, "' has dtype ", dtype_name(t.view.dtype), ", expected F32, BF16 or F16");
    if (t.view.nbytes != dtype_bytes(t.view.dtype, t.view.numel()))
      fail(t.file, ": tensor '", name, "' holds ", t.view.nbytes, " bytes, expected ",
           dtype_bytes(t.view.dtype, t.view.numel()));
    std::vector<float> out(size_t(t.view.numel()));
    const auto* u16 = static_cast<const uint16_t*>(t.view.data);
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = t.view.dtype == DType::F32    ? t.view.f32()[i]
               : t.view.dtype == DType::BF16 ? bf16_to_f32(u16[i])
                                             : f16_to_f32(u16[i]);
    return out;
  }

  size_t used() const { return used_; }

 private:
  const WeightStore& store_;
  std::map<std::string, const TensorSpec*> specs_;
  size_t used_ = 0;
};

}  // namespace

DenseWeights bind_dense_weights(const DenseConfig& c, const WeightStore& store) {
  std::vector<TensorSpec> specs = dense_tensor_specs(c);
  Binder b(store, specs);
  DenseWeights w;
  w.embed_tokens = b.weight("model.embed_tokens.weight");
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = cat("model.layers.", i, ".");
    DecoderLayer L;
    L.input_layernorm = b.vec(p + "input_layernorm.weight");
    L.post_attention_layernorm = b.vec(p + "post_attention_layernorm.weight");
    L.q_proj = b.linear(p + "self_attn.q_proj", c.qkv_bias);
    L.k_proj = b.linear(p + "self_attn.k_proj", c.qkv_bias);
    L.v_proj = b.linear(p + "self_attn.v_proj", c.qkv_bias);
    L.o_proj = b.linear(p + "self_attn.o_proj", c.o_bias);
    if (c.qk_norm) {
      L.q_norm = b.vec(p + "self_attn.q_norm.weight");
      L.k_norm = b.vec(p + "self_attn.k_norm.weight");
    }
    L.is_moe = c.layer_is_moe(i);
    if (L.is_moe) {
      L.moe.gate = b.weight(p + "mlp.gate.weight");
      for (int64_t e = 0; e < c.num_experts; ++e)
        L.moe.experts.push_back(b.swiglu(cat(p, "mlp.experts.", e, "."), false));
      L.moe.num_experts_per_tok = c.num_experts_per_tok;
      L.moe.norm_topk_prob = c.norm_topk_prob;
    } else {
      L.mlp = b.swiglu(p + "mlp.", c.mlp_bias);
    }
    w.layers.push_back(std::move(L));
  }
  w.norm = b.vec("model.norm.weight");
  // note: tied checkpoints sometimes still carry lm_head.weight; transformers ignores it, and so do we.
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : b.weight("lm_head.weight");
  if (store.size() > b.used())
    log_warn(store.size() - b.used(), " tensor(s) in the checkpoint are not used by ", c.architecture);

  for (const auto& s : specs) {
    const StoredTensor* t = store.find(s.name);
    const int64_t bytes = int64_t(t->view.nbytes);
    w.n_params += s.shape.size() == 2 ? s.shape[0] * s.shape[1] : s.shape[0];
    w.weight_bytes += bytes;
    const bool expert = s.name.find(".mlp.experts.") != std::string::npos;
    if (expert) {
      w.n_expert_params += s.shape[0] * s.shape[1];
      w.expert_bytes += bytes;
    }
    if (s.kind == Kind::Embedding) w.embed_bytes += bytes;
    w.dtypes[std::string(s.kind == Kind::Norm   ? "norms "
                         : s.kind == Kind::Bias ? "biases "
                                                : "weights ")][std::string(dtype_name(t->view.dtype))]++;
  }
  return w;
}

}  // namespace dm
