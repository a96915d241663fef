// Model bundle loading and streamed answers for run / chat (see generation.h).
#include "cli/generation.h"

#include <filesystem>

#include "chat/stop_strings.h"
#include "cli/model_loading.h"
#include "core/error.h"

namespace dm::cli {

namespace fs = std::filesystem;

ModelBundle load_bundle(const std::string& dir, bool quiet) {
  ModelBundle b;
  b.dir = dir;
  if (!fs::exists(dir)) fail(dir, ": no such model directory");
  if (!fs::exists(fs::path(dir) / "tokenizer.json")) fail(dir, ": no tokenizer.json (a tokenizer is needed to generate text)");
  b.tokenizer.emplace(Tokenizer::from_dir(dir));
  b.gen = load_generation_config((fs::path(dir) / "generation_config.json").string());
  b.model = load_model_with_progress(dir, {}, quiet);
  b.eos = b.model->info().eos_token_ids;
  b.eos.insert(b.eos.end(), b.gen.eos_token_ids.begin(), b.gen.eos_token_ids.end());
  if (auto e = b.tokenizer->eos_id()) b.eos.push_back(*e);
  if (b.tokenizer->vocab_size() > b.model->info().vocab_size)
    fail(dir, ": the tokenizer has ", b.tokenizer->vocab_size(), " tokens but the model's vocab_size is ",
         b.model->info().vocab_size);
  return b;
}

std::string render_chat_prompt(ModelBundle& b, const nlohmann::json& messages) {
  if (!b.chat_template) b.chat_template.emplace(chat::ChatTemplate::from_model_dir(b.dir));
  nlohmann::ordered_json req = {{"messages", messages}, {"add_generation_prompt", true}};
  return b.chat_template->render(chat::ChatRequest::from_json(req));
}

chat::ParserConfig parser_config(const ModelBundle& b, const std::string& rendered_prompt) {
  DM_CHECK(b.chat_template.has_value(), "parser_config before render_chat_prompt");
  return chat::detect_parser_config(b.chat_template->source(false), rendered_prompt);
}

Answer stream_answer(Engine& engine, const Tokenizer& tok, std::vector<int32_t> prompt, const AnswerOptions& opt) {
  Answer a;
  FILE* out = opt.out;
  bool printing_reasoning = false;
  auto sink = [&](const std::string& text, bool reasoning) {
    if (reasoning != printing_reasoning) {
      if (reasoning) {
        std::fputs(opt.color ? "\x1b[2m" : "[thinking]\n", out);
      } else {
        std::fputs(opt.color ? "\x1b[0m\n" : "\n[answer]\n", out);
      }
      printing_reasoning = reasoning;
    }
    (reasoning ? a.reasoning : a.content) += text;
    std::fputs(text.c_str(), out);
    std::fflush(out);
  };
  std::optional<chat::OutputParser> parser;
  if (opt.parser) parser.emplace(*opt.parser);
  auto show = [&](const chat::ParsedDelta& d) {
    if (!d.reasoning.empty()) sink(d.reasoning, true);
    if (!d.content.empty()) sink(d.content, false);
    for (const chat::ToolCall& c : d.tool_calls) sink(cat("[tool call ", c.name, "(", c.arguments, ")]\n"), false);
  };
  auto push_text = [&](const std::string& text) {
    if (text.empty()) return;
    if (parser)
      show(parser->push(text));
    else
      sink(text, false);
  };
  StopStringMatcher stops(opt.stop);
  StreamDecoder decoder(tok, /*skip_special_tokens=*/true);
  bool done = false;

  Request req;
  req.prompt = std::move(prompt);
  req.sampling = opt.sampling;
  req.max_tokens = opt.max_tokens;
  req.on_event = [&](const StreamEvent& ev) {
    if (ev.token >= 0 && !ev.stop_token) {
      push_text(stops.push(decoder.push(ev.token)));
    }
    if (ev.finish != FinishReason::None) {
      a.finish = ev.finish;
      a.error = ev.error;
      a.usage = ev.usage;
      a.timing = ev.timing;
      if (!stops.stopped()) {
        push_text(stops.push(decoder.flush()));
        push_text(stops.flush());
      }
      if (parser) show(parser->finish());
      done = true;
      return true;
    }
    if (stops.stopped()) return false;
    return !(opt.interrupt && opt.interrupt->load());
  };
  SubmitResult r = engine.submit(std::move(req));
  if (!r.ok()) fail(r.message);
  while (!done && engine.step()) {
  }
  if (printing_reasoning && opt.color) std::fputs("\x1b[0m", out);
  std::fputs("\n", out);
  std::fflush(out);
  if (a.finish == FinishReason::Error) fail("generation failed: ", a.error);
  return a;
}

std::string stats_line(const Answer& a) {
  const int64_t computed = a.usage.prompt_tokens - a.usage.cached_prompt_tokens;
  const double pf = a.timing.prefill_s > 0 ? double(computed) / a.timing.prefill_s : 0.0;
  const double dc = a.timing.decode_s > 0 ? double(a.usage.completion_tokens - 1) / a.timing.decode_s : 0.0;
  char s[256];
  std::snprintf(s, sizeof s, "prompt %lld tokens%s, %.1f tok/s prefill | generated %lld tokens, %.1f tok/s decode",
                (long long)a.usage.prompt_tokens,
                a.usage.cached_prompt_tokens ? cat(" (", a.usage.cached_prompt_tokens, " cached)").c_str() : "", pf,
                (long long)a.usage.completion_tokens, dc);
  return s;
}

}  // namespace dm::cli
