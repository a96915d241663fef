// The peer-test corpus: several hundred strings covering the scripts of the world, emoji (ZWJ sequences, skin
// tones, flags, keycaps), digit runs, whitespace runs, contractions, code, special-token text, combining marks and
// long words. Characters are limited to Unicode 14 (newer ones may split differently in the JS port), and avoid
// U+0085, U+180E and U+FEFF, which JS's \s classifies differently from the Oniguruma regex of HF tokenizers.
#pragma once
#include <string>
#include <vector>

namespace dm::peer {

std::vector<std::string> make_corpus();

}  // namespace dm::peer
