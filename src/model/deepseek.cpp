// DeepSeek V2/V3: tensor specs, checked loading, and the layer loop of the forward pass:
// h = h + attn(rms_norm(h)); h = h + ffn(rms_norm(h)) (dense SwiGLU below first_k_dense_replace, else MoE);
// logits = lm_head(rms_norm(h)). Reference: DeepSeek-V3 inference/model.py (Transformer, Block); HF names.
#include "model/deepseek.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/deepseek_model.h"
#include "model/quantize_load.h"

namespace dm {

namespace {

std::string layer_name(int i, const char* rest) { return cat("model.layers.", i, ".", rest); }

// Layer index of "model.layers.N.<...>", or -1.
int64_t layer_index(const std::string& name) {
  static const std::string kPrefix = "model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  size_t i = kPrefix.size(), j = i;
  while (j < name.size() && j - i < 9 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return -1;
  return std::stoll(name.substr(i, j - i));
}

void add_mlp(std::vector<TensorSpec>& s, const std::string& prefix, int64_t width, int64_t hidden) {
  s.push_back({prefix + "gate_proj.weight", {width, hidden}, TensorSpec::Kind::Linear});
  s.push_back({prefix + "up_proj.weight", {width, hidden}, TensorSpec::Kind::Linear});
  s.push_back({prefix + "down_proj.weight", {hidden, width}, TensorSpec::Kind::Linear});
}

std::vector<TensorSpec> specs_of(const DeepseekConfig& c) {
  using K = TensorSpec::Kind;
  const int64_t D = c.hidden_size, H = c.num_attention_heads;
  std::vector<TensorSpec> s;
  s.push_back({"model.embed_tokens.weight", {c.vocab_size, D}, K::Embedding});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    s.push_back({layer_name(i, "input_layernorm.weight"), {D}, K::Norm});
    if (c.q_lora_rank) {
      s.push_back({layer_name(i, "self_attn.q_a_proj.weight"), {c.q_lora_rank, D}, K::Linear});
      s.push_back({layer_name(i, "self_attn.q_a_layernorm.weight"), {c.q_lora_rank}, K::Norm});
      s.push_back({layer_name(i, "self_attn.q_b_proj.weight"), {H * c.qk_head_dim(), c.q_lora_rank}, K::Linear});
    } else {
      s.push_back({layer_name(i, "self_attn.q_proj.weight"), {H * c.qk_head_dim(), D}, K::Linear});
    }
    s.push_back({layer_name(i, "self_attn.kv_a_proj_with_mqa.weight"), {c.kv_width(), D}, K::Linear});
    s.push_back({layer_name(i, "self_attn.kv_a_layernorm.weight"), {c.kv_lora_rank}, K::Norm});
    s.push_back({layer_name(i, "self_attn.kv_b_proj.weight"),
                 {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, K::Linear});
    s.push_back({layer_name(i, "self_attn.o_proj.weight"), {D, H * c.v_head_dim}, K::Linear});
    s.push_back({layer_name(i, "post_attention_layernorm.weight"), {D}, K::Norm});
    if (!c.is_moe_layer(i)) {
      add_mlp(s, layer_name(i, "mlp."), c.intermediate_size, D);
      continue;
    }
    s.push_back({layer_name(i, "mlp.gate.weight"), {c.n_routed_experts, D}, K::Router});
    if (c.topk_method == TopkMethod::NoauxTc)
      s.push_back({layer_name(i, "mlp.gate.e_score_correction_bias"), {c.n_routed_experts}, K::RouterBias});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      add_mlp(s, layer_name(i, cat("mlp.experts.", e, ".").c_str()), c.moe_intermediate_size, D);
    if (c.n_shared_experts > 0)
      add_mlp(s, layer_name(i, "mlp.shared_experts."), c.n_shared_experts * c.moe_intermediate_size, D);
  }
  s.push_back({"model.norm.weight", {D}, K::Norm});
  if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", {c.vocab_size, D}, K::Linear});
  return s;
}

std::string scale_name(const std::string& weight) { return weight + "_scale_inv"; }

bool is_routed_expert(const std::string& name) { return name.find(".mlp.experts.") != std::string::npos; }

// Checks that `store` holds exactly the tensors of `specs` (+ FP8 scales, + skipped MTP layers), with allowed
// dtypes and exact shapes. Errors name the file and the tensors.
void check_tensors(const DeepseekConfig& c, const std::vector<TensorSpec>& specs, const WeightStore& store) {
  using K = TensorSpec::Kind;
  std::map<std::string, const TensorSpec*> by_name;
  for (auto& s : specs) by_name[s.name] = &s;
  const std::string where = store.files().empty() ? c.path : store.files().front()->path();

  std::vector<std::string> unknown, missing;
  for (const std::string& n : store.names()) {
    if (by_name.count(n)) continue;
    if (n.ends_with(".self_attn.k_b_proj.weight") || n.ends_with(".self_attn.v_b_proj.weight"))
      continue;  // the GGUF adapter's halves of kv_b_proj, as stored in the file (checked against it on use)
    if (layer_index(n) >= c.num_hidden_layers) continue;  // MTP module
    const std::string suffix = "_scale_inv";
    if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      auto it = by_name.find(n.substr(0, n.size() - suffix.size()));
      if (it != by_name.end() && it->second->kind == K::Linear && store.find(it->first)->view.dtype == DType::F8_E4M3)
        continue;
    }
    unknown.push_back(n);
  }
  for (auto& s : specs)
    if (!store.contains(s.name)) missing.push_back(s.name);
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < 5; ++i) out += (i ? ", '" : "'") + v[i] + "'";
    if (v.size() > 5) out += cat(" and ", v.size() - 5, " more");
    return out;
  };
  if (!missing.empty())
    fail(where, ": ", missing.size(), " tensor(s) missing for ", c.architecture, " (", c.path, "): ", list(missing));
  if (!unknown.empty())
    fail(store.find(unknown[0])->file, ": ", unknown.size(), " unknown tensor(s) for ", c.architecture, ": ",
         list(unknown));

  for (auto& s : specs) {
    switch (s.kind) {
      case K::Linear: {
        const TensorView& v =
            store.get(s.name, {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::Q8_0, DType::Q4_0,
                               DType::Q4_K, DType::Q5_K, DType::Q6_K}, s.shape);  // block types: GGUF files
        if (v.dtype == DType::F8_E4M3) {
          const int64_t r = s.shape[0], cc = s.shape[1];
          if (!store.contains(scale_name(s.name)))
            fail(store.find(s.name)->file, ": FP8 tensor '", s.name, "' has no '", scale_name(s.name), "'");
          store.get(scale_name(s.name), {DType::F32}, {(r + 127) / 128, (cc + 127) / 128});
        }
        break;
      }
      case K::Embedding:  // rows are looked up with dequantize_rows: GGUF's block types work too
        store.get(s.name, {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K,
                           DType::Q6_K}, s.shape);
        break;
      case K::Norm:
      case K::Router: store.get(s.name, {DType::F32, DType::BF16, DType::F16}, s.shape); break;
      case K::RouterBias:
      case K::Bias: store.get(s.name, {DType::F32, DType::BF16}, s.shape); break;
    }
  }
}

Weight weight_of(const WeightStore& store, const std::string& name) {
  const TensorView& v = store.find(name)->view;
  Weight w;
  w.dtype = v.dtype;
  w.rows = v.dim(0);
  w.cols = v.ndim() > 1 ? v.dim(1) : 1;
  w.data = v.data;
  if (v.dtype == DType::F8_E4M3) w.scale_inv = store.find(scale_name(name))->view.f32();
  return w;
}

// k_b / v_b of MlaWeights (see there), checked against the config's shapes.
void bind_absorbed(const DeepseekConfig& c, const WeightStore& w, int layer, MlaWeights& a, std::vector<Buffer>& owned) {
  const int64_t H = c.num_attention_heads, nope = c.qk_nope_head_dim, vd = c.v_head_dim, lora = c.kv_lora_rank;
  const std::string kb = layer_name(layer, "self_attn.k_b_proj.weight"), vb = layer_name(layer, "self_attn.v_b_proj.weight");
  if (w.contains(kb) && w.contains(vb)) {
    const DType qt[] = {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K,
                        DType::Q6_K};
    for (const auto& [name, shape] : {std::pair{kb, std::vector<int64_t>{H * lora, nope}},
                                      std::pair{vb, std::vector<int64_t>{H * vd, lora}}}) {
      const TensorView& v = w.find(name)->view;
      if (std::find(std::begin(qt), std::end(qt), v.dtype) == std::end(qt) || v.shape != shape)
        fail(w.find(name)->file, ": tensor '", name, "' is ", dtype_name(v.dtype), " ", shape_str(v.shape),
             ", expected ", shape_str(shape));
    }
    a.k_b = weight_of(w, kb);
    a.v_b = weight_of(w, vb);
    if (nope % dtype_block(a.k_b.dtype) == 0 && lora % dtype_block(a.v_b.dtype) == 0) return;
    a.v_b = Weight{};  // rows too short for the stored block type: fall back to kv_b_proj below
  }
  // W_UKᵀ from kv_b_proj: exact in its own dtype if that is a plain float type, else in f32.
  const Weight& kv = a.kv_b_proj;
  const DType dt = kv.dtype == DType::F32 || kv.dtype == DType::BF16 || kv.dtype == DType::F16 ? kv.dtype : DType::F32;
  const size_t esz = dtype_bytes(dt, 1);
  Buffer buf(size_t(H * lora * nope) * esz);
  std::vector<float> row(static_cast<size_t>(lora));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t d = 0; d < nope; ++d) {
      const int64_t r = h * (nope + vd) + d;
      uint8_t* out = buf.as<uint8_t>() + size_t(h * lora * nope + d) * esz;  // column d of head h's [lora, nope]
      if (dt == kv.dtype) {
        for (int64_t j = 0; j < lora; ++j) std::memcpy(out + size_t(j * nope) * esz, kv.row(r) + size_t(j) * esz, esz);
      } else {
        dequantize_rows(kv, r, r + 1, row.data());
        for (int64_t j = 0; j < lora; ++j) std::memcpy(out + size_t(j * nope) * esz, &row[size_t(j)], esz);
      }
    }
  a.k_b = Weight{dt, H * lora, nope, buf.data(), nullptr};
  owned.push_back(std::move(buf));
  if (kv.dtype != DType::F8_E4M3) return;  // v rows are used in place (row slices of kv_b_proj)
  // FP8 rows can only be sliced on 128-row scale blocks: W_UV as f32 rows.
  Buffer vbuf(size_t(H * vd * lora) * sizeof(float));
  for (int64_t h = 0; h < H; ++h)
    dequantize_rows(kv, h * (nope + vd) + nope, (h + 1) * (nope + vd), vbuf.as<float>() + h * vd * lora);
  a.v_b = Weight{DType::F32, H * vd, lora, vbuf.data(), nullptr};
  owned.push_back(std::move(vbuf));
}


std::vector<float> f32_vector(const WeightStore& store, const std::string& name) {
  const TensorView& v = store.find(name)->view;
  Weight w{v.dtype, 1, v.numel(), v.data, nullptr};
  std::vector<float> out(static_cast<size_t>(v.numel()));
  dequantize_rows(w, 0, 1, out.data());
  return out;
}

MlpWeights mlp_of(const WeightStore& store, const std::string& prefix) {
  return {weight_of(store, prefix + "gate_proj.weight"), weight_of(store, prefix + "up_proj.weight"),
          weight_of(store, prefix + "down_proj.weight")};
}

}  // namespace

std::vector<TensorSpec> deepseek_tensor_specs(const JsonConfig& config) {
  return specs_of(parse_deepseek_config(config));
}

ModelInfo deepseek_model_info(const JsonConfig& config, const WeightStore* weights) {
  using K = TensorSpec::Kind;
  DeepseekConfig c = parse_deepseek_config(config);
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
  const DType plain = c.torch_dtype == "float32" ? DType::F32 : c.torch_dtype == "float16" ? DType::F16 : DType::BF16;
  const double routed_share =
      c.n_routed_experts ? double(c.num_experts_per_tok) / double(c.n_routed_experts) : 0.0;
  std::map<std::string, std::set<std::string>> dtypes_by_role;
  double per_token = 0;
  for (const TensorSpec& s : specs_of(c)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    DType dt = plain;
    int64_t bytes;
    if (weights && weights->find(s.name)) {
      dt = weights->find(s.name)->view.dtype;
      bytes = int64_t(weights->find(s.name)->view.nbytes);
      if (auto* sc = weights->find(scale_name(s.name)); sc && dt == DType::F8_E4M3) bytes += int64_t(sc->view.nbytes);
    } else {
      if (s.kind == K::RouterBias) dt = DType::F32;
      if (c.fp8 && s.kind == K::Linear && s.name != "lm_head.weight") dt = DType::F8_E4M3;
      bytes = int64_t(dtype_bytes(dt, n));
      if (dt == DType::F8_E4M3) bytes += (s.shape[0] + 127) / 128 * ((s.shape[1] + 127) / 128) * 4;
    }
    const char* role = s.kind == K::Embedding ? "embeddings"
                       : s.kind == K::Norm    ? "norms"
                       : s.kind == K::Router  ? "router"
                       : s.kind == K::RouterBias ? "router bias"
                       : s.name == "lm_head.weight" ? "lm_head"
                                               : "linear";
    dtypes_by_role[role].insert(std::string(dtype_name(dt)));
    const bool routed = is_routed_expert(s.name);
    m.n_params += n;
    m.n_active_params += routed ? int64_t(std::llround(double(n) * routed_share))
                         : s.kind == K::Embedding ? s.shape[1] : n;
    m.weight_bytes += bytes;
    per_token += routed ? double(bytes) * routed_share
                 : s.kind == K::Embedding ? double(bytes) / double(s.shape[0]) : double(bytes);
  }
  if (c.tie_word_embeddings) per_token += double(c.vocab_size * c.hidden_size) * double(dtype_bytes(plain, 1));
  // GGUF halves of kv_b_proj (attn_k_b / attn_v_b): held too, and what decode reads instead of kv_b_proj.
  for (int i = 0; weights && i < c.num_hidden_layers; ++i) {
    const StoredTensor* kb = weights->find(layer_name(i, "self_attn.k_b_proj.weight"));
    const StoredTensor* vb = weights->find(layer_name(i, "self_attn.v_b_proj.weight"));
    const StoredTensor* kv = weights->find(layer_name(i, "self_attn.kv_b_proj.weight"));
    if (!kb || !vb || !kv) continue;
    m.weight_bytes += int64_t(kb->view.nbytes + vb->view.nbytes);
    per_token += double(kb->view.nbytes + vb->view.nbytes) - double(kv->view.nbytes);
  }
  m.weight_bytes_per_token = int64_t(per_token);
  for (auto& [role, set] : dtypes_by_role) {
    std::string d;
    for (auto& x : set) d += (d.empty() ? "" : "/") + x;
    m.dtype_summary += (m.dtype_summary.empty() ? "" : ", ") + std::string(role) + " " + d;
  }
  return m;
}

DeepseekModel::DeepseekModel(DeepseekConfig cfg, std::shared_ptr<const WeightStore> st, ModelInfo info)
    : c(std::move(cfg)), store(std::move(st)), info_(std::move(info)) {}

std::unique_ptr<Model> load_deepseek(const JsonConfig& config, std::shared_ptr<const WeightStore> weights,
                                     const LoadOptions& opts) {
  DeepseekConfig c = parse_deepseek_config(config);
  weights = quantize_linear_weights(std::move(weights), specs_of(c), opts.quant);
  const WeightStore& w = *weights;
  check_tensors(c, specs_of(c), w);
  auto m = std::make_unique<DeepseekModel>(c, weights, deepseek_model_info(config, &w));
  m->embed_tokens = weight_of(w, "model.embed_tokens.weight");
  m->lm_head = c.tie_word_embeddings ? m->embed_tokens : weight_of(w, "lm_head.weight");
  m->norm = f32_vector(w, "model.norm.weight");
  m->inv_freq = rope_inv_freq(c);
  m->rope_mscale = float(c.yarn_mscale(c.mscale) / c.yarn_mscale(c.mscale_all_dim));
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    DeepseekLayer L;
    L.input_layernorm = f32_vector(w, layer_name(i, "input_layernorm.weight"));
    L.post_attention_layernorm = f32_vector(w, layer_name(i, "post_attention_layernorm.weight"));
    MlaWeights& a = L.attn;
    if (c.q_lora_rank) {
      a.q_a_proj = weight_of(w, layer_name(i, "self_attn.q_a_proj.weight"));
      a.q_a_layernorm = f32_vector(w, layer_name(i, "self_attn.q_a_layernorm.weight"));
      a.q_b_proj = weight_of(w, layer_name(i, "self_attn.q_b_proj.weight"));
    } else {
      a.q_proj = weight_of(w, layer_name(i, "self_attn.q_proj.weight"));
    }
    a.kv_a_proj_with_mqa = weight_of(w, layer_name(i, "self_attn.kv_a_proj_with_mqa.weight"));
    a.kv_a_layernorm = f32_vector(w, layer_name(i, "self_attn.kv_a_layernorm.weight"));
    a.kv_b_proj = weight_of(w, layer_name(i, "self_attn.kv_b_proj.weight"));
    bind_absorbed(c, w, i, a, m->owned);
    a.o_proj = weight_of(w, layer_name(i, "self_attn.o_proj.weight"));
    L.is_moe = c.is_moe_layer(i);
    if (!L.is_moe) {
      L.mlp = mlp_of(w, layer_name(i, "mlp."));
    } else {
      L.moe.gate = weight_of(w, layer_name(i, "mlp.gate.weight"));
      if (c.topk_method == TopkMethod::NoauxTc)
        L.moe.e_score_correction_bias = f32_vector(w, layer_name(i, "mlp.gate.e_score_correction_bias"));
      for (int64_t e = 0; e < c.n_routed_experts; ++e)
        L.moe.experts.push_back(mlp_of(w, layer_name(i, cat("mlp.experts.", e, ".").c_str())));
      L.moe.has_shared = c.n_shared_experts > 0;
      if (L.moe.has_shared) L.moe.shared_experts = mlp_of(w, layer_name(i, "mlp.shared_experts."));
    }
    m->layers.push_back(std::move(L));
  }
  if (opts.pack) {
    // kv_b_proj rebuilt in F32 from quantized GGUF halves (attn_k_b / attn_v_b) is what the naive prefill attention
    // multiplies every context row by: rounded to BF16 (8 significant bits, below the halves' own quantization
    // error) it is packed with the rest and runs on 16-bit weights (AMX tiles where there are). kv_b_proj from
    // float halves, or as stored in a checkpoint, stays exact.
    std::vector<Weight*> ws{&m->lm_head};
    for (int i = 0; i < c.num_hidden_layers; ++i) {
      Weight& kv = m->layers[size_t(i)].attn.kv_b_proj;
      const StoredTensor* kb = w.find(layer_name(i, "self_attn.k_b_proj.weight"));
      const StoredTensor* vb = w.find(layer_name(i, "self_attn.v_b_proj.weight"));
      if (kv.dtype != DType::F32 || !kb || !vb || (dtype_block(kb->view.dtype) == 1 && dtype_block(vb->view.dtype) == 1))
        continue;
      Buffer& b = m->owned.emplace_back(size_t(kv.rows * kv.cols) * 2);
      const float* src = static_cast<const float*>(kv.data);
      for (int64_t j = 0; j < kv.rows * kv.cols; ++j) b.as<uint16_t>()[j] = f32_to_bf16(src[j]);
      kv = Weight{DType::BF16, kv.rows, kv.cols, b.data(), nullptr};
      ws.push_back(&kv);
    }
    auto mlp = [&](MlpWeights& x) { ws.insert(ws.end(), {&x.gate_proj, &x.up_proj, &x.down_proj}); };
    for (DeepseekLayer& L : m->layers) {
      ws.insert(ws.end(), {&L.attn.q_proj, &L.attn.q_a_proj, &L.attn.q_b_proj, &L.attn.kv_a_proj_with_mqa,
                           &L.attn.o_proj, &L.attn.k_b, &L.attn.v_b});
      if (!L.is_moe) mlp(L.mlp);
      for (MlpWeights& e : L.moe.experts) mlp(e);
      if (L.moe.has_shared) mlp(L.moe.shared_experts);
    }
    m->packed.pack(ws, weights->files(), opts.bf16_activations);
  }
  return m;
}

// inference/model.py precompute_freqs_cis: base^(-2i/d) in fp32, then the YaRN ramp between the correction dims.
std::vector<float> rope_inv_freq(const DeepseekConfig& c) {
  const int64_t d = c.qk_rope_head_dim;
  std::vector<float> f(static_cast<size_t>(d / 2));
  for (int64_t i = 0; i < d / 2; ++i) f[size_t(i)] = 1.0f / std::pow(float(c.rope_theta), float(2 * i) / float(d));
  if (!c.yarn) return f;
  auto corr_dim = [&](double rot) {
    return double(d) * std::log(double(c.original_max_position_embeddings) / (rot * 2 * M_PI)) /
           (2 * std::log(c.rope_theta));
  };
  double low = std::max(std::floor(corr_dim(c.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(c.beta_slow)), double(d - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < d / 2; ++i) {
    float ramp = std::clamp((float(i) - float(low)) / (float(high) - float(low)), 0.0f, 1.0f);
    float smooth = 1 - ramp;
    f[size_t(i)] = f[size_t(i)] / float(c.rope_factor) * (1 - smooth) + f[size_t(i)] * smooth;
  }
  return f;
}

void deepseek_set_mla_impl(Model& model, MlaImpl impl) {
  auto* m = dynamic_cast<DeepseekModel*>(&model);
  DM_CHECK(m, "deepseek_set_mla_impl: not a DeepSeek model");
  m->mla_impl = impl;
}

void DeepseekModel::forward(std::span<const SeqInput> batch, KvCache& kv, float* logits, ThreadPool* pool,
                            ForwardTrace* trace) {
  const int64_t D = c.hidden_size;
  DM_CHECK(kv.n_layers() == c.num_hidden_layers && kv.width() == c.kv_width(), "KV cache is ", kv.n_layers(),
           " layers x ", kv.width(), ", model needs ", c.num_hidden_layers, " x ", c.kv_width());
  std::vector<SeqRows> seqs;
  int64_t T = 0;
  for (const SeqInput& s : batch) {
    const int64_t n = int64_t(s.tokens.size());
    DM_CHECK(s.n_past >= 0 && int64_t(s.blocks.size()) * kv.block_size() >= s.n_past + n,
             "block table covers ", s.blocks.size() * size_t(kv.block_size()), " positions, need ", s.n_past + n);
    seqs.push_back({T, n, s.n_past, s.blocks});
    T += n;
  }

  // x: [T, hidden] residual stream; hn: [T, hidden] normed input of a block; y: [T, hidden] block output.
  std::vector<float> x(static_cast<size_t>(T * D)), hn(size_t(T * D)), y(size_t(T * D));
  int64_t row = 0;
  for (const SeqInput& s : batch)
    for (int32_t tok : s.tokens) {
      DM_CHECK(tok >= 0 && tok < c.vocab_size, "token id ", tok, " outside the vocabulary of ", c.vocab_size);
      dequantize_rows(embed_tokens, tok, tok + 1, x.data() + row++ * D);
    }
  if (trace) {
    *trace = ForwardTrace{};
    trace->experts.assign(size_t(c.num_hidden_layers), {});
    trace->weights.assign(size_t(c.num_hidden_layers), {});
    trace->hidden.push_back(x);
  }

  const float eps = float(c.rms_norm_eps);
  for (int il = 0; il < c.num_hidden_layers; ++il) {
    const DeepseekLayer& L = layers[size_t(il)];
    for (int64_t t = 0; t < T; ++t) rms_norm(&x[size_t(t * D)], L.input_layernorm.data(), D, eps, &hn[size_t(t * D)]);
    attention(il, seqs, hn.data(), T, y.data(), kv, pool);
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    for (int64_t t = 0; t < T; ++t)
      rms_norm(&x[size_t(t * D)], L.post_attention_layernorm.data(), D, eps, &hn[size_t(t * D)]);
    if (L.is_moe)
      moe(il, hn.data(), T, y.data(), pool, trace);
    else
      mlp_forward(L.mlp, hn.data(), T, y.data(), pool);
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    if (trace) trace->hidden.push_back(x);
  }

  // Final norm of every row (cheap), lm_head only on the rows that want logits.
  for (int64_t t = 0; t < T; ++t) rms_norm(&x[size_t(t * D)], norm.data(), D, eps, &hn[size_t(t * D)]);
  if (trace) trace->hidden.push_back(hn);
  std::vector<int64_t> out_rows;
  for (size_t i = 0; i < batch.size(); ++i) {
    const SeqRows& s = seqs[i];
    if (batch[i].logits == Logits::All)
      for (int64_t r = 0; r < s.n_new; ++r) out_rows.push_back(s.row0 + r);
    else if (batch[i].logits == Logits::Last && s.n_new > 0)
      out_rows.push_back(s.row0 + s.n_new - 1);
  }
  if (out_rows.empty()) return;
  std::vector<float> sel(out_rows.size() * size_t(D));
  for (size_t i = 0; i < out_rows.size(); ++i)
    std::memcpy(&sel[i * size_t(D)], &hn[size_t(out_rows[i] * D)], size_t(D) * sizeof(float));
  linear(lm_head, sel.data(), int64_t(out_rows.size()), logits, pool);
}

}  // namespace dm
