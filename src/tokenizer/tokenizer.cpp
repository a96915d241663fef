// Tokenizer pipeline: sanitize -> split out raw added tokens -> normalize -> split out normalized added tokens
// -> pre-tokenize -> BPE per word -> post-process; decode: ids -> token strings -> decoder chain.
// Order of steps: tokenizers' TokenizerImpl::encode_single_sequence and AddedVocabulary::extract_and_normalize.
#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace dm {

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::Impl::finish() {
  int32_t n = 0;
  const Vocab& vocab = model->vocab();
  for (size_t e = 0; e < vocab.size(); ++e) {
    if (vocab.id(e) < 0) fail("tokenizer: model.vocab['", vocab.token(e), "'] has a negative id ", vocab.id(e));
    n = std::max(n, vocab.id(e) + 1);
  }
  for (const auto& a : added) {
    if (a.id < 0) fail("tokenizer: added token '", a.content, "' has a negative id ", a.id);
    if (a.content.empty()) fail("tokenizer: added token ", a.id, " has empty content");
    n = std::max(n, a.id + 1);
  }
  if (n > (1 << 24)) fail("tokenizer: ids up to ", n - 1, " are implausibly large (vocab of at most 16M expected)");
  id_to_token.assign(size_t(n), std::string_view());
  special.assign(size_t(n), 0);
  for (size_t e = 0; e < vocab.size(); ++e) id_to_token[size_t(vocab.id(e))] = vocab.token(e);
  std::vector<AddedToken> raw, normalized;
  for (const auto& a : added) {
    id_to_token[size_t(a.id)] = a.content;
    if (a.special) special[size_t(a.id)] = 1;
    (a.normalized ? normalized : raw).push_back(a);
  }
  raw_matcher = AddedTokenMatcher(std::move(raw));
  normalized_matcher = AddedTokenMatcher(std::move(normalized));
}

namespace {

// Encodes one stretch of normalized text that holds no added token.
void encode_words(const Tokenizer::Impl& t, std::string_view text, PreTokenizeScratch& scratch,
                  std::vector<int32_t>& ids) {
  if (text.empty()) return;
  PreTokens p;
  p.text.assign(text);
  p.spans.emplace_back(0, text.size());
  if (t.pre_tokenizer) t.pre_tokenizer->apply(p, scratch);
  std::string_view all(p.text);
  for (auto [b, e] : p.spans) t.model->encode_word(all.substr(b, e - b), p.byte_level, ids);
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::string sanitized;
  if (!unicode::is_valid(input)) {
    sanitized = unicode::sanitize(input);
    input = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(input.size() / 3 + 4);
  if (add_special_tokens && t.post) ids = t.post->before;
  PreTokenizeScratch scratch;
  std::vector<Segment> segments, inner;
  if (t.raw_matcher.empty()) segments.push_back({-1, 0, input.size()});
  else t.raw_matcher.split(input, segments);
  std::string normalized;
  for (const Segment& s : segments) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    normalized.assign(input.substr(s.start, s.end - s.start));
    if (t.normalizer) t.normalizer->normalize(normalized);
    if (t.normalized_matcher.empty()) {
      encode_words(t, normalized, scratch, ids);
      continue;
    }
    inner.clear();
    t.normalized_matcher.split(normalized, inner);
    for (const Segment& n : inner) {
      if (n.id >= 0) ids.push_back(n.id);
      else encode_words(t, std::string_view(normalized).substr(n.start, n.end - n.start), scratch, ids);
    }
  }
  if (add_special_tokens && t.post) ids.insert(ids.end(), t.post->after.begin(), t.post->after.end());
  return ids;
}

namespace {

// transformers' PreTrainedTokenizerBase.clean_up_tokenization.
void clean_up_tokenization(std::string& s) {
  static constexpr std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) {
    std::string out;
    std::string_view f(from);
    size_t prev = 0;
    for (size_t p = s.find(f); p != std::string::npos; p = s.find(f, prev)) {
      out.append(s, prev, p - prev);
      out += to;
      prev = p + f.size();
    }
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }
}

}  // namespace

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  auto keep = [&](int32_t id) {
    return id >= 0 && size_t(id) < t.id_to_token.size() && !t.id_to_token[size_t(id)].empty() &&
           !(skip_special_tokens && t.special[size_t(id)]);
  };
  std::string out;
  if (t.decoder && t.decoder->is_byte_level()) {
    std::string bytes;
    for (int32_t id : ids)
      if (keep(id)) bytes += token_bytes(id);
    out = unicode::sanitize(bytes);
  } else {
    std::vector<std::string> tokens;
    for (int32_t id : ids)
      if (keep(id)) tokens.emplace_back(t.id_to_token[size_t(id)]);
    if (t.decoder) {
      t.decoder->decode_chain(tokens);
      for (const auto& s : tokens) out += s;
    } else {  // no decoder: tokenizers joins the tokens with spaces
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    }
  }
  if (t.clean_up_spaces) clean_up_tokenization(out);
  return out;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  for (const auto& a : impl_->added)
    if (a.content == token) return a.id;
  return impl_->model->find(token);
}

std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_to_token.size()) return {};
  return impl_->id_to_token[size_t(id)];
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)];
}

std::string Tokenizer::token_bytes(int32_t id) const {
  std::string text(token_text(id));
  if (impl_->decoder && impl_->decoder->is_byte_level()) return byte_level_token_bytes(text);
  return text;
}

bool Tokenizer::decodes_bytewise() const {
  return impl_->decoder && impl_->decoder->is_byte_level() && !impl_->clean_up_spaces;
}

Tokenizer Tokenizer::from_spec(const TokenizerSpec& spec) {
  auto t = std::make_unique<Impl>();
  Vocab vocab;
  vocab.reserve(spec.tokens.size());
  for (size_t i = spec.tokens.size(); i-- > 0;) vocab.insert(spec.tokens[i], int32_t(i));  // first id wins
  t->model = std::make_unique<Bpe>(std::move(vocab), spec.merges, BpeOptions{});
  if (spec.nfc) t->normalizer = make_nfc_normalizer();
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  for (const auto& re : spec.pre_tokenizer_regexes) steps.push_back(make_regex_split(re, SplitBehavior::Isolated, false));
  steps.push_back(make_byte_level(false, false));
  t->pre_tokenizer = make_sequence(std::move(steps));
  t->decoder = make_byte_level_decoder();
  t->added = spec.added_tokens;
  t->bos = spec.bos_id;
  t->eos = spec.eos_id;
  PostProcessor post;
  if (spec.add_bos) {
    if (!spec.bos_id) fail("tokenizer: add_bos is set but there is no BOS token");
    post.before.push_back(*spec.bos_id);
  }
  if (spec.add_eos) {
    if (!spec.eos_id) fail("tokenizer: add_eos is set but there is no EOS token");
    post.after.push_back(*spec.eos_id);
  }
  t->post = post;
  t->finish();
  return Tokenizer(std::move(t));
}

std::vector<std::string> Tokenizer::pre_tokenizer_regexes(std::string_view name) {
  // The Split patterns of the published tokenizer.json files.
  static constexpr const char* kQwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  static constexpr const char* kLlama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
  if (name == "qwen2" || name == "deepseek-r1-qwen") return {kQwen2};
  if (name == "llama-bpe") return {kLlama3};
  if (name == "gpt-2") return {kGpt2};
  if (name == "deepseek-v3")
    return {"\\p{N}{1,3}", "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
            "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};
  if (name == "deepseek-llm")  // DeepSeek-LLM and DeepSeek-V2: letters (Latin, Greek, Cyrillic, ...) by ranges
    return {"[\r\n]",
            "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
            "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
            "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
            "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
            "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
            "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
            "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
            "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
            "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
            "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
            "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
            "\U0001e900-\U0001e943]+",
            "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
            "\\s+$",
            "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
            "\\p{N}+"};
  if (name == "deepseek-coder")  // note: checked only once a GGUF reader feeds vocab-tests/ggml-vocab-deepseek-coder
    return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}"};
  fail("tokenizer: pre-tokenizer '", name,
       "' is not known (known: deepseek-v3, deepseek-llm, deepseek-coder, qwen2, deepseek-r1-qwen, llama-bpe, gpt-2)");
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(&tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  if (!tok_->decodes_bytewise()) {
    ids_.push_back(id);
    std::string all = tok_->decode(ids_, skip_special_);
    // Hold back a trailing U+FFFD: it may be an incomplete sequence that the next token completes.
    size_t end = all.size();
    if (end >= 3 && all.compare(end - 3, 3, "\xEF\xBF\xBD") == 0) return {};
    if (all.compare(0, emitted_.size(), emitted_) != 0) return {};  // the decoder rewrote earlier text
    std::string fresh = all.substr(emitted_.size());
    emitted_ = std::move(all);
    return fresh;
  }
  if (id < 0 || id >= tok_->vocab_size() || (skip_special_ && tok_->is_special(id))) return {};
  pending_ += tok_->token_bytes(id);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    unicode::Scan r = unicode::scan(pending_, i);
    if (r.incomplete) break;  // wait for the rest of this character
    if (r.valid) out.append(pending_, i, r.len);
    else unicode::append_utf8(out, unicode::kReplacement);
    i += r.len;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!tok_->decodes_bytewise()) {
    std::string all = tok_->decode(ids_, skip_special_);
    if (all.compare(0, emitted_.size(), emitted_) == 0) out = all.substr(emitted_.size());
    ids_.clear();
    emitted_.clear();
    return out;
  }
  out = unicode::sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace dm
