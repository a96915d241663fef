// Fuzz target: any bytes as a Qwen2 / Llama / Qwen3 / Qwen3-MoE config.json either parse into a DenseConfig that
// satisfies its invariants or fail with dm::Error; nothing else may escape or crash.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "loader/dense_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return 0;
  try {
    dm::DenseConfig c = dm::parse_dense_config(dm::JsonConfig(std::move(j), "fuzz/config.json"));
    DM_CHECK(c.num_attention_heads % c.num_key_value_heads == 0 && c.head_dim % 2 == 0 && c.kv_width() > 0,
             "parsed config breaks its invariants");
    DM_CHECK(c.num_experts_per_tok <= c.num_experts, "top-k above the expert count");
    for (int i = 0; i < c.num_hidden_layers; ++i) (void)c.layer_is_moe(i);
  } catch (const dm::Error&) {
  }
  return 0;
}
