# Byte-level BPE tokenizer for the bundled demo model: training, encoding and tokenizer.json export.
# Same scheme as GPT-2 (bytes mapped to printable code points, the GPT-2 pre-tokenizer regex, merges applied by
# rank), written out in Hugging Face's tokenizer.json format (BPE model + ByteLevel pre-tokenizer/decoder +
# TemplateProcessing that prepends BOS), so any Hugging Face-compatible tokenizer loads it unchanged.
import collections
import json

import regex

# GPT-2's pre-tokenizer; Hugging Face's ByteLevel pre-tokenizer with use_regex=true applies exactly this pattern.
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
SPECIAL_TOKENS = [BOS, EOS, USER, ASSISTANT]  # ids 0..3


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable code points."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, codes)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def pre_tokenize(text):
    """Text -> list of pre-tokens, each already mapped to byte-level characters."""
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8")) for piece in GPT2_PATTERN.findall(text)]


def train_bpe(texts, vocab_size, log=print):
    """Learns merges until the vocabulary (special tokens + 256 bytes + merges) reaches vocab_size.

    Deterministic: the most frequent pair wins, ties go to the lexicographically smallest pair.
    Returns (vocab: dict token->id, merges: list of (left, right)).
    """
    word_counts = collections.Counter()
    for text in texts:
        word_counts.update(pre_tokenize(text))
    words = [list(w) for w in sorted(word_counts)]  # each word as a list of symbols
    counts = [word_counts[w] for w in sorted(word_counts)]

    pair_counts = collections.defaultdict(int)
    pair_words = collections.defaultdict(set)  # pair -> indices of words that contain it
    for wi, (syms, c) in enumerate(zip(words, counts)):
        for a, b in zip(syms, syms[1:]):
            pair_counts[(a, b)] += c
            pair_words[(a, b)].add(wi)

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for b in range(256):
        vocab[BYTE_TO_CHAR[b]] = len(vocab)
    merges = []
    while len(vocab) < vocab_size and pair_counts:
        top = max(pair_counts.values())
        if top < 2:
            break
        best = min(p for p, c in pair_counts.items() if c == top)
        merged = best[0] + best[1]
        merges.append(best)
        vocab[merged] = len(vocab)
        for wi in sorted(pair_words.pop(best)):
            syms, c = words[wi], counts[wi]
            for a, b in zip(syms, syms[1:]):  # remove this word's old pairs
                pair_counts[(a, b)] -= c
                if pair_counts[(a, b)] == 0:
                    del pair_counts[(a, b)]
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[wi] = out
            for a, b in zip(out, out[1:]):  # add its new pairs
                pair_counts[(a, b)] += c
                pair_words[(a, b)].add(wi)
        pair_counts.pop(best, None)
        if len(merges) % 500 == 0:
            log(f"bpe: {len(merges)} merges, vocab {len(vocab)}")
    return vocab, merges


class Tokenizer:
    """Encoder/decoder with the semantics of the exported tokenizer.json (merges by rank, specials split first)."""

    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.merges = merges
        self.special_re = regex.compile("|".join(regex.escape(s) for s in SPECIAL_TOKENS))
        self.cache = {}

    def bos_id(self):
        return self.vocab[BOS]

    def eos_id(self):
        return self.vocab[EOS]

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        syms = list(word)
        while len(syms) > 1:
            best_rank, best_i = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best_rank, best_i = r, i
            if best_rank is None:
                break
            pair = (syms[best_i], syms[best_i + 1])
            out, i = [], 0
            while i < len(syms):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == pair:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text, add_bos=False):
        """Like Hugging Face's encode(text, add_special_tokens=add_bos): special-token text becomes that token."""
        ids = [self.bos_id()] if add_bos else []
        pos = 0
        for m in self.special_re.finditer(text):
            ids += self._encode_plain(text[pos:m.start()])
            ids.append(self.vocab[m.group(0)])
            pos = m.end()
        ids += self._encode_plain(text[pos:])
        return ids

    def _encode_plain(self, text):
        ids = []
        for word in pre_tokenize(text):
            ids += self._bpe(word)
        return ids

    def decode(self, ids, skip_special=False):
        out, pending = [], bytearray()
        for i in ids:
            tok = self.id_to_token[i]
            if tok in SPECIAL_TOKENS:
                out.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
                if not skip_special:
                    out.append(tok)
            else:
                pending += bytes(CHAR_TO_BYTE[c] for c in tok)
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)


def tokenizer_json(vocab, merges):
    """The tokenizer.json document (Hugging Face tokenizers format)."""
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [vocab[BOS]], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<｜Assistant｜>{{ message['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜>{% endif %}"
)


def tokenizer_config_json(max_len):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": max_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }


def load_tokenizer_json(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    merges = [tuple(m.split(" ")) for m in doc["model"]["merges"]]
    return Tokenizer(doc["model"]["vocab"], merges)
