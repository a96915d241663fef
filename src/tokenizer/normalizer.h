// Normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence.
// Unicode normalization and case mapping come from utf8proc. Reference: tokenizers/src/normalizers/.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace dm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // s is valid UTF-8 and stays valid UTF-8.
  virtual void normalize(std::string& s) const = 0;
};

// Builds the normalizer described by j (an object with "type"); `where` names it in errors
// ("tokenizer.json: normalizer.normalizers[1]"). Returns null for a JSON null.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);
// NFC alone (used by in-memory construction).
std::unique_ptr<Normalizer> make_nfc_normalizer();

}  // namespace dm
