// `deepmoe synth --format gguf`: a random-weight model written straight to one GGUF file (llama.cpp's names and
// layouts, through the same mapping as `deepmoe convert`), one tensor at a time: no float model on disk or in RAM.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace dm::cli {

// values(spec, index): the f32 values of specs[index] (row-major), generated on demand.
using SynthValues = std::function<std::vector<float>(const TensorSpec& spec, size_t index)>;

// cfg: the final config.json object (overrides applied). type: f32 | f16 | bf16 | q8_0 | q4_0.
// tokenizer_dir: tokenizer files for the GGUF vocabulary ("" : llama.cpp-style stand-in tokens).
void write_synth_gguf(const nlohmann::json& cfg, const std::string& type, const std::string& tokenizer_dir,
                      const std::string& out_path, const SynthValues& values);

}  // namespace dm::cli
