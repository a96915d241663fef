// Incremental reasoning / tool-call parser. A small state machine over a buffer: in each mode it looks for the
// markers that can end the mode, emits the text that can no longer be part of a marker, and holds back a suffix
// that is a prefix of some marker (and an incomplete UTF-8 sequence), so every delta is valid UTF-8 and the
// concatenated result is the same for any split of the input. Marker spellings come from the models' templates.
#include "chat/output_parser.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace dm::chat {

namespace {

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr std::string_view kHermesBegin = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the longest suffix of s that is a proper prefix of one of the markers.
size_t partial_marker(std::string_view s, const std::vector<std::string_view>& markers) {
  size_t best = 0;
  for (auto m : markers)
    for (size_t n = std::min(s.size(), m.size() - 1); n > best; --n)
      if (s.substr(s.size() - n) == m.substr(0, n)) {
        best = n;
        break;
      }
  return best;
}

// Bytes at the end of s that start a UTF-8 sequence not yet complete.
size_t incomplete_utf8(std::string_view s) {
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    unsigned char c = s[s.size() - back];
    if ((c & 0xc0) == 0x80) continue;  // continuation byte: look further back
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

// The model's JSON arguments, compact when they parse.
std::string normalize_args(std::string_view text) {
  std::string_view t = trim(text);
  try {
    return nlohmann::ordered_json::parse(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception&) {
    return std::string(t);
  }
}

}  // namespace

void ParsedDelta::append(const ParsedDelta& d) {
  reasoning += d.reasoning;
  content += d.content;
  tool_calls.insert(tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
}

OutputParser::OutputParser(ParserConfig config) : cfg_(std::move(config)) {
  mode_ = cfg_.reasoning && cfg_.starts_in_reasoning ? Mode::Reasoning : Mode::Content;
  strip_leading_ = mode_ == Mode::Reasoning;
}

ParsedDelta OutputParser::push(std::string_view text) {
  ParsedDelta out;
  buf_.append(text);
  process(out, false);
  return out;
}

ParsedDelta OutputParser::finish() {
  ParsedDelta out;
  process(out, true);
  if (mode_ == Mode::Content || mode_ == Mode::Reasoning) {
    emit(out, buf_, mode_ == Mode::Reasoning);
    if (mode_ == Mode::Content) out.content += held_ws_;  // trailing content whitespace is real content
  } else if (mode_ == Mode::HermesCall) {
    // Generation stopped before </tool_call>: keep a complete call, else give the text back as content.
    if (!parse_hermes_call(buf_, out)) out.content += dropped_ws_ + std::string(kHermesBegin) + buf_;
  } else {
    std::string_view rest = buf_;
    size_t b = rest.rfind(kCallBegin);
    if (b == std::string_view::npos || !parse_deepseek_call(rest.substr(b + kCallBegin.size()), out))
      if (!trim(rest).empty()) out.content += dropped_ws_ + entry_marker_ + buf_;
  }
  buf_.clear();
  held_ws_.clear();
  return out;
}

void OutputParser::emit(ParsedDelta& out, std::string_view text, bool reasoning) {
  if (strip_leading_) {
    while (!text.empty() && is_ws(text.front())) text.remove_prefix(1);
    if (text.empty()) return;
    strip_leading_ = false;
  }
  if (text.empty()) return;
  size_t end = text.size();
  while (end > 0 && is_ws(text[end - 1])) --end;
  std::string& dst = reasoning ? out.reasoning : out.content;
  if (end > 0) {
    dst += held_ws_;
    held_ws_.clear();
    dst.append(text.substr(0, end));
  }
  held_ws_.append(text.substr(end));
}

bool OutputParser::parse_deepseek_call(std::string_view body, ParsedDelta& out) {
  size_t sep = body.find(kSep);
  if (sep == std::string_view::npos) return false;
  std::string_view left = body.substr(0, sep), right = body.substr(sep + kSep.size());
  ToolCall call;
  size_t fence = right.find("```json");
  if (fence != std::string_view::npos) {  // V3 / R1: TYPE<sep>NAME\n```json\nARGS\n```
    call.name = std::string(trim(right.substr(0, fence)));
    std::string_view args = right.substr(fence + 7);
    size_t close = args.rfind("```");
    call.arguments = normalize_args(close == std::string_view::npos ? args : args.substr(0, close));
  } else {  // V3.1: NAME<sep>ARGS
    call.name = std::string(trim(left));
    call.arguments = normalize_args(right);
  }
  if (call.name.empty()) return false;
  call.id = next_id();
  out.tool_calls.push_back(std::move(call));
  return true;
}

bool OutputParser::parse_hermes_call(std::string_view body, ParsedDelta& out) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(trim(body));
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  ToolCall call;
  call.name = j["name"].get<std::string>();
  const char* key = j.contains("arguments") ? "arguments" : j.contains("parameters") ? "parameters" : nullptr;
  if (!key) call.arguments = "{}";
  else if (j[key].is_string()) call.arguments = j[key].get<std::string>();
  else call.arguments = j[key].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  call.id = next_id();
  out.tool_calls.push_back(std::move(call));
  return true;
}

void OutputParser::process(ParsedDelta& out, bool at_end) {
  while (true) {
    if (mode_ == Mode::Content || mode_ == Mode::Reasoning) {
      std::vector<std::string_view> markers;
      if (mode_ == Mode::Reasoning) {
        markers.push_back(cfg_.reasoning_end);
      } else {
        if (cfg_.reasoning) markers.push_back(cfg_.reasoning_start);
        if (cfg_.tool_calls == ToolCallFormat::DeepSeek) {
          markers.push_back(kCallsBegin);
          markers.push_back(kCallBegin);
        }
        if (cfg_.tool_calls == ToolCallFormat::Hermes) markers.push_back(kHermesBegin);
      }
      size_t at = std::string::npos;
      std::string_view found;
      for (auto m : markers) {
        if (m.empty()) continue;
        size_t p = buf_.find(m);
        if (p < at) {
          at = p;
          found = m;
        }
      }
      bool reasoning = mode_ == Mode::Reasoning;
      if (at == std::string::npos) {
        if (at_end) return;  // finish() flushes the rest
        size_t keep = partial_marker(buf_, markers);
        keep += incomplete_utf8(std::string_view(buf_).substr(0, buf_.size() - keep));
        emit(out, std::string_view(buf_).substr(0, buf_.size() - keep), reasoning);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      emit(out, std::string_view(buf_).substr(0, at), reasoning);
      dropped_ws_ = std::move(held_ws_);  // whitespace right before a marker belongs to neither side...
      held_ws_.clear();
      if (found == cfg_.reasoning_end && reasoning) {
        mode_ = Mode::Content;
        strip_leading_ = true;
        buf_.erase(0, at + found.size());
      } else if (found == cfg_.reasoning_start) {
        mode_ = Mode::Reasoning;
        strip_leading_ = true;
        buf_.erase(0, at + found.size());
      } else if (found == kHermesBegin) {
        mode_ = Mode::HermesCall;
        buf_.erase(0, at + found.size());
      } else {
        mode_ = Mode::DeepSeekCalls;
        entry_marker_ = found == kCallsBegin ? std::string(found) : std::string();
        buf_.erase(0, at + entry_marker_.size());  // a bare call begin stays in the buffer
      }
      strip_leading_ = strip_leading_ || mode_ != Mode::Reasoning;
      continue;
    }
    if (mode_ == Mode::HermesCall) {
      size_t e = buf_.find(kHermesEnd);
      if (e == std::string::npos) return;
      std::string body = buf_.substr(0, e);
      if (!parse_hermes_call(body, out))  // ...unless the "marker" turns out to be text
        out.content += dropped_ws_ + std::string(kHermesBegin) + body + std::string(kHermesEnd);
      buf_.erase(0, e + kHermesEnd.size());
      mode_ = Mode::Content;
      strip_leading_ = true;
      continue;
    }
    // DeepSeek tool-call section: complete calls as they close, leave at the section end.
    size_t call_end = buf_.find(kCallEnd), calls_end = buf_.find(kCallsEnd);
    if (calls_end != std::string::npos && (call_end == std::string::npos || calls_end < call_end)) {
      buf_.erase(0, calls_end + kCallsEnd.size());
      mode_ = Mode::Content;
      strip_leading_ = true;
      continue;
    }
    if (call_end == std::string::npos) return;
    std::string_view section = std::string_view(buf_).substr(0, call_end);
    size_t b = section.rfind(kCallBegin);
    std::string_view body = b == std::string_view::npos ? section : section.substr(b + kCallBegin.size());
    if (!parse_deepseek_call(body, out)) out.content += std::string(section) + std::string(kCallEnd);
    buf_.erase(0, call_end + kCallEnd.size());
  }
}

ParserConfig detect_parser_config(std::string_view source, std::string_view prompt) {
  ParserConfig c;
  c.reasoning = source.find("<think>") != std::string_view::npos || source.find("</think>") != std::string_view::npos;
  std::string_view p = trim(prompt);
  c.starts_in_reasoning = c.reasoning && p.size() >= c.reasoning_start.size() &&
                          p.substr(p.size() - c.reasoning_start.size()) == c.reasoning_start;
  if (source.find(kCallsBegin) != std::string_view::npos || source.find(kCallBegin) != std::string_view::npos)
    c.tool_calls = ToolCallFormat::DeepSeek;
  else if (source.find(kHermesBegin) != std::string_view::npos && source.find("<function=") == std::string_view::npos)
    c.tool_calls = ToolCallFormat::Hermes;
  return c;
}

}  // namespace dm::chat
