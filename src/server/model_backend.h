// A model served from this process: the model, its engine (continuous batching), tokenizer, chat template and
// output parsing, behind the ModelBackend interface of the HTTP layer. Text handling per request (incremental
// detokenizing, stop strings, reasoning / tool-call split) runs in the engine's callback, so that a stop string
// ends the sequence in the same step; the HTTP thread only picks up finished deltas.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "chat/chat_template.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/backend.h"
#include "tokenizer/tokenizer.h"

namespace dm {

struct LocalModelOptions {
  std::string path;  // model directory or .gguf file
  std::string id;    // API model id; default: the folder (or file) name
  int n_threads = 0;
  EngineConfig engine;
  LoadOptions load;
};

class LocalModel : public ModelBackend {
 public:
  // Loads everything; throws dm::Error naming what is wrong. `model` may be given already loaded.
  LocalModel(const LocalModelOptions& opts, std::unique_ptr<Model> model = nullptr);
  ~LocalModel() override;

  std::string id() const override { return id_; }
  int64_t context_length() const override { return engine_->max_sequence_tokens(); }
  std::variant<std::unique_ptr<Completion>, ApiError> start_chat(const ChatRequest& req) override;
  std::variant<std::unique_ptr<Completion>, ApiError> start_completion(const CompletionRequest& req) override;
  std::string metrics_text() const override;

  const Model& model() const { return *model_; }
  Engine& engine() { return *engine_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  // The prompt text a chat request renders to (for tests and `deepmoe template`-like checks).
  std::variant<std::string, ApiError> render_chat(const ChatRequest& req) const;

 private:
  struct Prepared;
  std::variant<std::unique_ptr<Completion>, ApiError> submit(Prepared p);
  std::optional<ApiError> sampling_of(const SamplingRequest& s, int64_t n_prompt, SamplingParams& params,
                                      int64_t& max_tokens) const;

  std::string id_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Engine> engine_;
  Tokenizer tokenizer_;
  std::optional<chat::ChatTemplate> template_;
  SamplingParams default_sampling_;
};

}  // namespace dm
