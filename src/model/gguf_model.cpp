// GGUF tensors -> HF-named WeightStore, and opening a .gguf as a checkpoint.
// Layouts (llama.cpp convert_hf_to_gguf.py): GGML dims are the HF shape reversed, so most tensors are views.
// Stacked experts ffn_{gate,up,down}_exps {in, out, n_expert}: expert e is the contiguous slice e of n_expert.
// DeepSeek attn_k_b {nope, kv_lora, n_head} = kv_b_proj's k rows transposed per head, attn_v_b {kv_lora, v, n_head}
// its v rows. Llama attn_q/attn_k rows stay in llama.cpp's permuted order (GGUF row 2i+p of a head holds HF row
// p·head_dim/2 + i); the config says so with deepmoe_rope_adjacent (model/llama.h).
#include "model/gguf_model.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "kernels/linear.h"
#include "model/gguf_names.h"

namespace dm {

namespace {

struct Builder {
  const GgufFile& g;
  WeightStore& store;

  void add_view(const std::string& hf, const GgufTensor& t) {
    if (store.contains(hf)) fail(*t.file, ": tensor '", t.name(), "' maps to '", hf, "', which is already present");
    store.add(hf, {g.view(t), *t.file});
  }

  // ffn_{gate,up,down}_exps {in, out, n} -> model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight [out, in]
  void add_experts(int layer, const std::string& proj, const GgufTensor& t) {
    TensorView v = g.view(t);
    if (v.ndim() != 3) fail(*t.file, ": tensor '", t.name(), "' must have 3 dims {in, out, n_expert}");
    const int64_t n = v.dim(0);
    const size_t per = v.nbytes / size_t(n);
    for (int64_t e = 0; e < n; ++e) {
      TensorView x;
      x.dtype = v.dtype;
      x.shape = {v.dim(1), v.dim(2)};
      x.data = static_cast<const uint8_t*>(v.data) + size_t(e) * per;
      x.nbytes = per;
      store.add(cat("model.layers.", layer, ".mlp.experts.", e, ".", proj, ".weight"), {x, *t.file});
    }
  }

  // Rows of a [rows, cols] tensor as f32 (any supported dtype).
  std::vector<float> rows_f32(const TensorView& v, int64_t rows, int64_t cols) {
    std::vector<float> out(size_t(rows * cols));
    Weight w{v.dtype, rows, cols, v.data, nullptr};
    dequantize_rows(w, 0, rows, out.data());
    return out;
  }

  // kv_b_proj [n_head·(nope + v), kv_lora] from attn_k_b {nope, kv_lora, n_head} and attn_v_b {kv_lora, v, n_head}.
  // F32 unless both are the same 16-bit float type (then that type): exact either way.
  void add_kv_b(int layer, const GgufTensor& kb, const GgufTensor& vb) {
    TensorView k = g.view(kb), v = g.view(vb);
    if (k.ndim() != 3 || v.ndim() != 3 || k.dim(0) != v.dim(0) || k.dim(1) != v.dim(2))
      fail(*kb.file, ": tensors '", kb.name(), "' ", shape_str(k.shape), " and '", vb.name(), "' ",
           shape_str(v.shape), " do not fit together ([n_head, kv_lora, nope] and [n_head, v, kv_lora])");
    const int64_t n_head = k.dim(0), kv_lora = k.dim(1), nope = k.dim(2), vd = v.dim(1);
    std::vector<float> kf = rows_f32(k, n_head * kv_lora, nope);  // [n_head][kv_lora][nope]
    std::vector<float> vf = rows_f32(v, n_head * vd, kv_lora);    // [n_head][vd][kv_lora]
    const int64_t rows = n_head * (nope + vd);
    std::vector<float> out(size_t(rows * kv_lora));
    for (int64_t h = 0; h < n_head; ++h) {
      float* head = out.data() + h * (nope + vd) * kv_lora;
      for (int64_t r = 0; r < nope; ++r)
        for (int64_t c = 0; c < kv_lora; ++c) head[r * kv_lora + c] = kf[size_t((h * kv_lora + c) * nope + r)];
      std::memcpy(head + nope * kv_lora, vf.data() + h * vd * kv_lora, size_t(vd * kv_lora) * 4);
    }
    DType dt = k.dtype == v.dtype && (k.dtype == DType::F16 || k.dtype == DType::BF16) ? k.dtype : DType::F32;
    Buffer buf(dtype_bytes(dt, int64_t(out.size())));
    for (size_t i = 0; i < out.size(); ++i) {
      if (dt == DType::F32) buf.as<float>()[i] = out[i];
      else if (dt == DType::F16) buf.as<uint16_t>()[i] = f32_to_f16(out[i]);
      else buf.as<uint16_t>()[i] = f32_to_bf16(out[i]);
    }
    store.add_owned(cat("model.layers.", layer, ".self_attn.kv_b_proj.weight"), *kb.file, dt, {rows, kv_lora},
                    std::move(buf));
    // The halves as stored, for the absorbed attention (W_UKᵀ and W_UV per head, in the file's own dtype).
    store.add(cat("model.layers.", layer, ".self_attn.k_b_proj.weight"),
              {TensorView{k.dtype, {n_head * kv_lora, nope}, k.data, k.nbytes}, *kb.file});
    store.add(cat("model.layers.", layer, ".self_attn.v_b_proj.weight"),
              {TensorView{v.dtype, {n_head * vd, kv_lora}, v.data, v.nbytes}, *vb.file});
  }
};

}  // namespace

bool is_gguf_path(const std::string& path) {
  namespace fs = std::filesystem;
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0 && !fs::is_directory(path);
}

std::shared_ptr<WeightStore> hf_weights_from_gguf(const GgufFile& g, const nlohmann::json& config) {
  auto store = std::make_shared<WeightStore>();
  for (auto& f : g.files()) store->keep_file(f);
  Builder b{g, *store};
  const std::string arch = g.architecture();
  const int n_layers = config.at("num_hidden_layers").get<int>();
  for (const GgufTensor& t : g.tensors()) {
    const std::string& name = t.name();
    int layer = -1;
    std::string rest;
    bool in_layer = split_layer_name(name, "blk.", layer, rest);
    if (in_layer && layer >= n_layers) continue;  // MTP (nextn) layers are not part of the main model
    if (name == "rope_freqs.weight") continue;    // folded into rope_scaling by hf_config_from_gguf
    if (in_layer && rest.size() > 12 && rest.compare(rest.size() - 12, 12, "_exps.weight") == 0) {
      std::string proj = rest.substr(4, rest.size() - 16);  // "ffn_gate_exps.weight" -> "gate"
      if (proj != "gate" && proj != "up" && proj != "down") fail(*t.file, ": unexpected tensor '", name, "'");
      b.add_experts(layer, proj + "_proj", t);
      continue;
    }
    if (in_layer && rest == "attn_k_b.weight") {
      const GgufTensor* vb = g.find_tensor(cat("blk.", layer, ".attn_v_b.weight"));
      if (!vb) fail(*t.file, ": tensor '", name, "' has no matching blk.", layer, ".attn_v_b.weight");
      if (g.find_tensor(cat("blk.", layer, ".attn_kv_b.weight")))
        continue;  // files with both layouts: attn_kv_b is the original, use it
      b.add_kv_b(layer, t, *vb);
      continue;
    }
    if (in_layer && rest == "attn_v_b.weight") {
      if (!g.find_tensor(cat("blk.", layer, ".attn_k_b.weight")))
        fail(*t.file, ": tensor '", name, "' has no matching blk.", layer, ".attn_k_b.weight");
      continue;  // consumed with attn_k_b
    }
    std::string hf = hf_name_from_gguf(name);
    if (hf.empty()) fail(*t.file, ": tensor '", name, "' has no known meaning for architecture ", arch);
    b.add_view(hf, t);
  }
  return store;
}

GgufCheckpoint open_gguf_checkpoint(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  nlohmann::json config = hf_config_from_gguf(g);
  auto weights = hf_weights_from_gguf(g, config);
  return {JsonConfig(std::move(config), g.path()), std::move(weights)};
}

}  // namespace dm
