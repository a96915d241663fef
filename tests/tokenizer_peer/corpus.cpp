// Deterministic corpus generation for the tokenizer peer test (fixed-seed mt19937).
#include "corpus.h"

#include <utf8proc.h>

#include <random>

#include "tokenizer/unicode.h"

namespace dm::peer {

namespace {

std::string utf8(char32_t c) {
  std::string s;
  unicode::append_utf8(s, c);
  return s;
}

// Code point ranges assigned long before Unicode 14, one per script, all letters or marks or digits.
struct Range {
  char32_t lo, hi;
};
constexpr Range kScripts[] = {
    {0x41, 0x5A},     {0x61, 0x7A},     {0xC0, 0xFF},     {0x100, 0x17F},   {0x180, 0x24F},  // Latin
    {0x391, 0x3A9},   {0x3B1, 0x3C9},   {0x400, 0x45F},   {0x531, 0x556},   {0x561, 0x586},  // Greek, Cyrillic, Armenian
    {0x5D0, 0x5EA},   {0x621, 0x64A},   {0x660, 0x669},   {0x905, 0x939},   {0x966, 0x96F},  // Hebrew, Arabic, Devanagari
    {0x985, 0x9B9},   {0xA05, 0xA39},   {0xB85, 0xBB9},   {0xC05, 0xC39},   {0xD05, 0xD39},  // Bengali, Gurmukhi, Tamil, Telugu, Malayalam
    {0xE01, 0xE30},   {0xE81, 0xE84},   {0xF40, 0xF47},   {0x10D0, 0x10F0}, {0x1100, 0x1112}, // Thai, Lao, Tibetan, Georgian, Jamo
    {0x1200, 0x1248}, {0x13A0, 0x13F4}, {0x1780, 0x17B3}, {0x1820, 0x1877}, {0x3041, 0x3096}, // Ethiopic, Cherokee, Khmer, Mongolian, Hiragana
    {0x30A1, 0x30FA}, {0x3105, 0x312C}, {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3}, {0xFF10, 0xFF5A}, // Katakana, Bopomofo, CJK, Hangul, fullwidth
    {0x10330, 0x1034A}, {0x1D400, 0x1D433}, {0x20000, 0x2A6DF},                              // Gothic, math letters, CJK ext B
};

constexpr const char* kSentences[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Ça va? Où est la bibliothèque, s'il vous plaît?",
    "Übergrößenträger müssen draußen bleiben.",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку.",
    "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "שלום עולם, מה שלומך היום?",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "আমি বাংলায় গান গাই।",
    "வணக்கம் உலகம்",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "ສະບາຍດີ", "བཀྲ་ཤིས་བདེ་ལེགས།", "გამარჯობა მსოფლიო", "Բարեւ աշխարհ", "ሰላም ለዓለም", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ជំរាបសួរ ពិភពលោក", "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ",
    "我想在apple工作1314151天～", "今天天气很好，我们去公园散步吧！", "東京は日本の首都です。カタカナもひらがなも。",
    "안녕하세요 세계! 한국어 문장입니다.", "Tiếng Việt có dấu: Hà Nội, Sài Gòn, phở bò.",
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "don't can't won't shouldn't y'all o'clock rock'n'roll", "He’s here — isn’t he? ‘quoted’ “double”",
    "HELLO'S WORLD'LL 'S 'T 'RE 'VE 'M 'LL 'D 's 't 're 've 'm 'll 'd",
    "3.14159 2,718 1e-10 0x1F 0b1010 -42 +7 1/2 50% $1,000.00 €20 ¥300",
    "Call 555-0123 or +1 (800) 555 0199 before 2024-12-31T23:59:59Z.",
    "Zero-width: a\u200bb c\u200cd e\u200df, soft hy\u00adphen, no-break\u00a0space, ideographic\u3000space.",
    "Tabs\tand\tnewlines\nand\r\nwindows\rlines\fform\vvertical",
    "Math: ∑_{i=1}^{n} i² = n(n+1)/2, ∀x∈ℝ: x² ≥ 0, ∫₀¹ f(x)dx ≈ π/4",
    "Arrows ←↑→↓ ⇐⇒ boxes ┌─┐│└┘ shapes ■□▲△●○ music ♩♪♫♬ chess ♔♕♖♗♘♙",
    "𝐇𝐞𝐥𝐥𝐨 𝕎𝕠𝕣𝕝𝕕 𝔊𝔬𝔱𝔥𝔦𝔠 𐌰𐌱𐌲 𠀀𠀁𠀂",
};

constexpr const char* kCode[] = {
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (size_t i = 0; i < v.size(); ++i) { sum += v[i] * w[i]; }  // dot product",
    "{\"name\": \"deepmoe\", \"version\": [1, 2, 3], \"ok\": true, \"null\": null}",
    "<div class=\"box\" id='x'><p>Hello &amp; welcome</p><!-- comment --></div>",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "const f = async (x) => { await sleep(10); return x ?? 0; };\n",
    "    indented line\n        more indented\n\n\n    back\n",
    "fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![]; Ok(()) }",
    "$ ls -la | grep '^d' && echo \"done\" || exit 1",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares\ny = {k: v for k, v in zip(a, b)}",
    "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=1;g>>=2;h&=3;i|=4;j^=5;k&&l||!m",
    "/* block */ /** doc */ // line\n#define MAX(a,b) ((a)>(b)?(a):(b))",
    "```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |",
};

constexpr const char* kEmoji[] = {
    "🚀", "😶‍🌫️", "✅", "🦙🦙", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "👍🏽", "👩🏿‍💻", "🧑‍🤝‍🧑", "🇺🇸🇯🇵🇩🇪",
    "1️⃣#️⃣*️⃣", "❤️‍🔥", "🫠🫶🥹", "🐻‍❄️", "👁️‍🗨️", "☺️☺", "🤷‍♀️🤷🏻‍♂️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "💯🔥🎉",
};

constexpr const char* kSpecial[] = {
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|vision_start|>", "<|image_pad|>", "<|EOT|>",
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜fim▁hole｜>", "<｜▁pad▁｜>",
};

constexpr const char* kWhite[] = {" ", "  ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2003", "\v", "\f", "\r"};

}  // namespace

std::vector<std::string> make_corpus() {
  std::mt19937 rng(20240601);
  auto below = [&](size_t n) { return size_t(rng() % n); };
  std::vector<std::string> c;

  c.emplace_back("");
  for (const char* s : kSentences) c.emplace_back(s);
  for (const char* s : kCode) c.emplace_back(s);
  for (const char* s : kEmoji) c.push_back(std::string("emoji ") + s + " end" + s);

  // Random text in each script: words of 1-12 characters.
  for (const Range& r : kScripts)
    for (int k = 0; k < 3; ++k) {
      std::string s;
      size_t words = 1 + below(6);
      for (size_t w = 0; w < words; ++w) {
        if (w) s += below(5) ? " " : ", ";
        size_t len = 1 + below(12);
        for (size_t i = 0; i < len;) {
          char32_t ch = r.lo + char32_t(below(r.hi - r.lo + 1));
          if (utf8proc_category(utf8proc_int32_t(ch)) == UTF8PROC_CATEGORY_CN) continue;  // unassigned
          s += utf8(ch);
          ++i;
        }
      }
      c.push_back(s);
    }

  // Digit runs: ASCII, fullwidth, Arabic-Indic, Devanagari, with separators.
  for (int k = 0; k < 24; ++k) {
    std::string s;
    const char32_t zero[] = {'0', 0xFF10, 0x660, 0x966};
    char32_t z = zero[k % 4 == 3 ? below(4) : 0];
    size_t runs = 1 + below(4);
    for (size_t r = 0; r < runs; ++r) {
      size_t len = 1 + below(k < 12 ? 8 : 40);
      for (size_t i = 0; i < len; ++i) s += utf8(z + char32_t(below(10)));
      const char* sep[] = {" ", ".", ",", "-", "", "abc", "..."};
      s += sep[below(7)];
    }
    c.push_back(s);
  }

  // Whitespace runs, alone and around words.
  for (int k = 0; k < 30; ++k) {
    std::string s;
    if (k % 3 == 1) s += "word";
    size_t len = 1 + below(k < 15 ? 6 : 40);
    for (size_t i = 0; i < len; ++i) s += kWhite[below(std::size(kWhite))];
    if (k % 3 != 0) s += "next";
    if (k % 5 == 0) s += "  ";
    c.push_back(s);
  }

  // Special-token text: alone, adjacent, inside words, partial, in a chat layout.
  for (const char* t : kSpecial) {
    c.emplace_back(t);
    c.push_back(std::string("x") + t + "y");
    c.push_back(std::string(" ") + t + " \n");
    std::string partial(t);
    c.push_back(partial.substr(0, partial.size() - 1) + " broken");
  }
  c.emplace_back("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  c.emplace_back("<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Why?<｜Assistant｜><think>\nHmm.\n</think>\n\nBecause.<｜end▁of▁sentence｜>");
  c.emplace_back("<think></think><think>\n\n</think><<|im_end|>><|im_end|><|im_end|><｜User｜><｜User｜>");

  // Combining marks: decomposed accents (NFC composes them), stacks, Hangul jamo, Indic vowel signs.
  const char* combos[] = {"e\u0301", "a\u0308\u0304", "o\u0302\u0323", "n\u0303", "A\u030A", "\u1100\u1161\u11A8",
                          "\u0915\u093F", "z\u0336\u0334\u0321", "i\u0307", "\u05E9\u05C1\u05B8", "c\u0327\u0301"};
  for (int k = 0; k < 25; ++k) {
    std::string s;
    size_t n = 1 + below(8);
    for (size_t i = 0; i < n; ++i) {
      s += combos[below(std::size(combos))];
      if (below(3) == 0) s += " ";
      if (below(4) == 0) s += "text";
    }
    c.push_back(s);
  }

  // Long words.
  c.push_back(std::string(3000, 'a'));
  c.push_back("pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism");
  for (int k = 0; k < 8; ++k) {
    std::string s;
    size_t len = 200 + below(2000);
    for (size_t i = 0; i < len; ++i) s += char('a' + below(26));
    if (k % 2) s = "Start" + s + "END";
    c.push_back(s);
  }
  {
    std::string s;
    for (int i = 0; i < 300; ++i) s += "ab";
    c.push_back(s);
    c.push_back(std::string(500, '!') + std::string(300, '-') + std::string(200, '='));
    std::string cjk;
    for (int i = 0; i < 400; ++i) cjk += utf8(0x4E00 + char32_t(below(0x51A5)));
    c.push_back(cjk);
  }

  // Random mixtures of all of the above.
  std::vector<std::string> pool = c;
  for (int k = 0; k < 200; ++k) {
    std::string s;
    size_t parts = 2 + below(5);
    for (size_t i = 0; i < parts; ++i) {
      const std::string& p = pool[below(pool.size())];
      size_t len = std::min<size_t>(p.size(), 80);
      s += p.substr(0, len);
      // Cut on a character boundary.
      while (!s.empty() && !unicode::is_valid(s)) s.pop_back();
      if (below(2)) s += kWhite[below(std::size(kWhite))];
      if (below(4) == 0) s += kSpecial[below(std::size(kSpecial))];
      if (below(4) == 0) s += kEmoji[below(std::size(kEmoji))];
    }
    c.push_back(s);
  }
  return c;
}

}  // namespace dm::peer
