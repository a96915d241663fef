// deepmoe convert DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|auto] [--name NAME]: a Hugging Face model directory
// written as a GGUF file in llama.cpp's conventions (see src/model/gguf_convert.h), so both engines can run it.
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "model/gguf_convert.h"

namespace dm::cli {

int cmd_convert(int argc, char** argv) {
  CLI::App app{"Write a Hugging Face model directory (safetensors, BF16/F16/F32/FP8) as a GGUF file", "convert"};
  std::string dir, out;
  ConvertOptions opts;
  app.add_option("DIR", dir, "model directory (config.json, *.safetensors, tokenizer.json)")->required();
  app.add_option("OUT", out, "GGUF file to write")->required();
  app.add_option("--type", opts.type, "tensor type: f32, f16, bf16, q8_0, q4_0, or auto (the checkpoint's)")
      ->capture_default_str();
  app.add_option("--name", opts.name, "general.name (default: the directory's name)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto t0 = std::chrono::steady_clock::now();
  ConvertSummary s = convert_to_gguf(dir, out, opts);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& n : s.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf("%s: %s, %s, %zu tensors, %.1f MiB of tensor data, %.1f s\n", out.c_str(), s.arch.c_str(),
              s.type.c_str(), s.n_tensors, double(s.n_bytes) / (1 << 20), secs);
  return 0;
}

}  // namespace dm::cli
