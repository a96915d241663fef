# Export of the bundled demo model (HF layout, BF16 safetensors) and of the reference outputs deepmoe's tests
# compare against (tests/data/bundled/). Every reference is computed from the exported BF16 weights widened to
# fp32, i.e. exactly the numbers deepmoe loads. Called by tools/train_tiny.py.
import json
import os
import time

import jinja2
import numpy as np
import torch

import tiny_bpe
import tiny_deepseek as ds
import train_tiny as tt

FIXED_TEXT = ("In the beginning God created the heaven and the earth.\n"
              "And God said, Let there be light: and there was light.")
GREEDY_PROMPT = "And God said"
GREEDY_TOKENS = 64
CHAT_MESSAGES = [{"role": "user", "content": "And the LORD spake unto Moses"}]
TOKENIZER_SAMPLES = [
    "And God said",
    "In the beginning God created the heaven and the earth.",
    "Hello, world! It's 2024; isn't it?",
    "  leading spaces,\ttabs\tand\n\nnewlines  ",
    "The LORD is my shepherd; I shall not want.\n",
    "Ünïcödé: naïve café, 北京, Ελληνικά, emoji 🙂.",
    "<｜User｜>Who made thee?<｜Assistant｜>God.<｜end▁of▁sentence｜>",
    "numbers 3:16 and 1234567890",
    "",
]


def dump(path, doc):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")


def export_model(model, cfg, tok, out):
    """config.json, model.safetensors (BF16; router bias F32), tokenizer files, generation_config.json."""
    tensors = {}
    for name, p in model.named_parameters():
        tensors[name] = p.detach().to(torch.bfloat16)  # round to nearest even
    for name, b in model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            tensors[name] = b.detach().float()
    ds.write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    dump(os.path.join(out, "config.json"), cfg)
    dump(os.path.join(out, "tokenizer.json"), tiny_bpe.tokenizer_json(tok.vocab, tok.merges))
    dump(os.path.join(out, "tokenizer_config.json"), tiny_bpe.tokenizer_config_json(cfg["max_position_embeddings"]))
    dump(os.path.join(out, "generation_config.json"), {
        "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": True,
        "temperature": 0.7, "top_p": 0.9})


def load_exported(out):
    cfg = json.load(open(os.path.join(out, "config.json")))
    model = ds.DeepseekV3(cfg)
    ds.load_weights(model, ds.read_safetensors(os.path.join(out, "model.safetensors")))
    model.eval()
    return cfg, model


def render_chat(messages):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tc = tiny_bpe.tokenizer_config_json(0)
    return env.from_string(tc["chat_template"]).render(messages=messages, add_generation_prompt=True,
                                                       bos_token=tc["bos_token"], eos_token=tc["eos_token"])


def write_references(cfg, tok, held_text, args, info):
    out, refs = args.out, args.refs
    info_path = os.path.join(out, "training.json")
    if info is None:
        info = json.load(open(info_path))
    cfg, model = load_exported(out)
    t0 = time.time()
    with open(os.path.join(refs, "heldout.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(held_text)

    fixed = tok.encode(FIXED_TEXT, add_bos=True)
    with torch.no_grad():
        logits = model(torch.tensor([fixed]))[0].numpy().astype("<f4")  # [n, vocab]
    logits.tofile(os.path.join(refs, "logits_fixed.f32"))
    margins = tt.routing_margins(model, fixed)
    top1 = logits.argmax(-1).tolist()

    prompt = tok.encode(GREEDY_PROMPT, add_bos=True)
    gen, gen_gap = tt.greedy(model, prompt, GREEDY_TOKENS, tok.eos_id())
    chat_text = render_chat(CHAT_MESSAGES)
    chat_prompt = tok.encode(chat_text)  # the template writes BOS itself
    chat_gen, chat_gap = tt.greedy(model, chat_prompt, GREEDY_TOKENS, tok.eos_id())

    held_ids = tok.encode(held_text)
    ppl, nll, n = tt.perplexity(model, held_ids, tok.bos_id())
    samples = [{"text": s, "ids": tok.encode(s), "ids_with_bos": tok.encode(s, add_bos=True),
                "decoded": tok.decode(tok.encode(s))} for s in TOKENIZER_SAMPLES]
    for s in samples:
        assert s["decoded"] == s["text"], s

    refs_doc = {
        "model": "models/deepmoe-kjv-tiny",
        "weights": "model.safetensors (BF16, router bias F32) widened to fp32; fp32 compute, naive MLA, prefill",
        "fixed": {"text": FIXED_TEXT, "tokens": fixed, "logits_file": "logits_fixed.f32",
                  "logits_shape": list(logits.shape), "top1": top1,
                  "routing_margin_expert": margins["expert"], "routing_margin_group": margins["group"]},
        "greedy": {"prompt": GREEDY_PROMPT, "prompt_tokens": prompt, "max_new_tokens": GREEDY_TOKENS,
                   "tokens": gen, "text": tok.decode(gen), "min_top1_top2_logit_gap": gen_gap},
        "greedy_chat": {"messages": CHAT_MESSAGES, "add_generation_prompt": True, "prompt_text": chat_text,
                        "prompt_tokens": chat_prompt, "max_new_tokens": GREEDY_TOKENS, "tokens": chat_gen,
                        "text": tok.decode(chat_gen, skip_special=True), "min_top1_top2_logit_gap": chat_gap},
        "perplexity": {"file": "heldout.txt", "context": tt.PPL_CONTEXT, "stride": tt.PPL_CONTEXT - 1,
                       "n_scored_tokens": n, "n_file_tokens": len(held_ids), "nll_sum": nll,
                       "mean_nll": nll / n, "perplexity": ppl},
        "tokenizer": samples,
    }
    dump(os.path.join(refs, "reference.json"), refs_doc)
    info = dict(info, heldout_perplexity=round(ppl, 4), heldout_loss=round(nll / n, 4))
    dump(info_path, info)
    write_model_readme(out, cfg, info, refs_doc)
    write_refs_readme(refs, refs_doc)
    tt.log(f"references written ({time.time() - t0:.0f}s): held-out ppl {ppl:.3f} (loss {nll / n:.4f}), "
           f"greedy: {refs_doc['greedy']['text']!r}, chat: {refs_doc['greedy_chat']['text']!r}, "
           f"margins expert {margins['expert']:.2e} group {margins['group']:.2e}, gaps {gen_gap:.3f}/{chat_gap:.3f}")


def write_model_readme(out, cfg, info, refs):
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    held = ", ".join(f"{b} {c}" for i, (b, c, _) in enumerate(tt.kjv_chapters())
                     if i % tt.HELDOUT_EVERY == tt.HELDOUT_OFFSET)
    text = f"""# deepmoe-kjv-tiny

A tiny DeepSeek-V3-architecture Mixture-of-Experts language model trained on the King James Bible, bundled with
deepmoe so that `deepmoe run -p "And God said"` works from a fresh clone with no download. It writes KJV-flavoured
text; it knows nothing else. Trained by `tools/train_tiny.py` (deterministic given its seed and thread count).

## Corpus and licence
- Text: the King James Version (1611) as shipped by Debian's `bible-kjv-text` (read with the `bible` program of
  `bible-kjv`): 1189 chapters, one verse per line, chapters separated by a blank line, verse numbers removed.
  The KJV is in the public domain, and so are these weights, tokenizer and reference outputs.
- Held out (not trained on): every chapter whose index (0-based, canonical order) is {tt.HELDOUT_OFFSET} mod
  {tt.HELDOUT_EVERY}: {held}; written to tests/data/bundled/heldout.txt.
- Fortunes (Debian `fortunes`) are not used: their quotations are not all public domain.

## Architecture (config.json, `model_type` deepseek_v3)
hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers (first {cfg['first_k_dense_replace']} dense,
intermediate {cfg['intermediate_size']}), {cfg['num_attention_heads']} heads; MLA with q_lora_rank
{cfg['q_lora_rank']}, kv_lora_rank {cfg['kv_lora_rank']}, qk_nope/qk_rope/v head dims
{cfg['qk_nope_head_dim']}/{cfg['qk_rope_head_dim']}/{cfg['v_head_dim']}; RoPE on adjacent pairs with
rope_scaling yarn, factor {cfg['rope_scaling']['factor']} (identical to plain RoPE; raise it to stretch the context);
MoE with {cfg['n_routed_experts']} routed experts (width {cfg['moe_intermediate_size']}), top-{cfg['num_experts_per_tok']},
{cfg['n_shared_experts']} shared expert, sigmoid scores, noaux_tc routing in {cfg['n_group']} groups (top
{cfg['topk_group']} groups), e_score_correction_bias, norm_topk_prob, routed_scaling_factor
{cfg['routed_scaling_factor']}; vocab {cfg['vocab_size']} (byte-level BPE); trained context {info['seq']} tokens.
{info['parameters']:,} parameters; model.safetensors is {size / 2 ** 20:.1f} MiB (BF16; the router bias is F32, as
in the official checkpoints).

## Tokenizer and chat template
Byte-level BPE trained on the training text (GPT-2 byte mapping and pre-tokenizer regex, {cfg['vocab_size']} tokens:
4 special tokens, 256 bytes, {cfg['vocab_size'] - 260} merges). Special tokens: `<｜begin▁of▁sentence｜>` (0, BOS,
added by the post-processor), `<｜end▁of▁sentence｜>` (1, EOS), `<｜User｜>` (2), `<｜Assistant｜>` (3). The chat
template writes `BOS <｜User｜>message <｜Assistant｜>reply EOS ...`; during training one row in ten was such a chat
(the user gives the first words of a verse, the assistant the whole verse), so chat replies end with EOS.

## Training
{info['steps']} steps of {info['batch']} rows x {info['seq']} tokens (BOS + a random window of the training text, or a
chat row), AdamW (lr {info['lr']}, betas 0.9/0.95, weight decay 0.1 on matrices), 50 warm-up steps then cosine to
10%, gradient clipping 1.0, seed {info['seed']}, {info['threads']} CPU thread(s), PyTorch {info['torch']}:
{info['train_seconds']} s. The router bias follows DeepSeek-V3's auxiliary-loss-free balancing: after each step,
bias += 0.001 * sign(mean load - expert load), per MoE layer; no auxiliary loss.
- final training loss (smoothed): {info['final_train_loss_smoothed']}
- held-out loss {info['heldout_loss']} nats/token, perplexity {info['heldout_perplexity']} (procedure in
  tests/data/bundled/README.md)

Greedy continuation of "{refs['greedy']['prompt']}" ({refs['greedy']['max_new_tokens']} tokens):

    {refs['greedy']['prompt']}{refs['greedy']['text'].replace(chr(10), chr(10) + '    ')}

## Retraining
    apt-get install python3-torch python3-regex python3-jinja2 bible-kjv-text libopenblas0-openmp
    /usr/bin/python3 tools/train_tiny.py              # trains, exports here, rewrites tests/data/bundled/
    /usr/bin/python3 tools/train_tiny.py --check-golden   # the PyTorch model against tests/data/golden/v3_tiny
Without OpenBLAS (Debian's reference BLAS) training is several times slower. training.json holds the loss curve.
"""
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)


def write_refs_readme(refs, doc):
    p = doc["perplexity"]
    text = f"""# Reference outputs of the bundled model (models/deepmoe-kjv-tiny)

Written by `tools/train_tiny.py` (PyTorch, `tools/tiny_deepseek.py`) from the exported BF16 weights widened to fp32
(the same numbers deepmoe loads), fp32 compute. Regenerate with `/usr/bin/python3 tools/train_tiny.py --refs-only`.

- `reference.json`
  - `fixed`: the token ids of a fixed text (BOS first) and, in `logits_fixed.f32`, the logits of one prefill over
    them: raw little-endian float32, row-major [{doc['fixed']['logits_shape'][0]}, {doc['fixed']['logits_shape'][1]}].
    Routing margins on this sequence (smallest gap between the last chosen and first rejected expert / group,
    biased scores): {doc['fixed']['routing_margin_expert']:.2e} / {doc['fixed']['routing_margin_group']:.2e}.
    deepmoe must match within 1e-4 (max abs).
  - `greedy`: prompt "{doc['greedy']['prompt']}" encoded with BOS, then {doc['greedy']['max_new_tokens']} tokens of
    argmax decoding (no stop unless EOS is produced): token ids and decoded text. Smallest top-1/top-2 logit gap on
    the way: {doc['greedy']['min_top1_top2_logit_gap']:.3f}.
  - `greedy_chat`: the same for the chat template rendered by Python's Jinja2 (trim_blocks, lstrip_blocks,
    add_generation_prompt) over `messages`; generation stops at EOS. The text is decoded without special tokens.
  - `perplexity`: see below.
  - `tokenizer`: strings with their ids without and with BOS (`add_special_tokens`), as this script's tokenizer
    (same semantics as tokenizer.json) encodes them.
- `heldout.txt`: the held-out chapters (not trained on), UTF-8, chapters separated by a blank line.

## Perplexity procedure (what `deepmoe perplexity --model DIR --file heldout.txt` must compute)
1. Read the file as UTF-8 and tokenize the whole text at once, without special tokens (no BOS):
   {p['n_file_tokens']} tokens.
2. Cut the ids into consecutive windows of C = {p['stride']} tokens (context N = {p['context']} = C + 1), no overlap;
   the last window is shorter ({p['n_file_tokens'] % p['stride']} tokens).
3. Evaluate each window as a fresh sequence [BOS, w_0, ..., w_(len-2)] (positions from 0, empty cache) and score
   every window token: -log softmax(logits at position i)[w_i] for i = 0..len-1 (w_0 is predicted from BOS alone).
4. perplexity = exp(sum of those negative log-likelihoods / number of scored tokens).
Reference: {p['n_scored_tokens']} scored tokens, mean NLL {p['mean_nll']:.6f}, perplexity {p['perplexity']:.4f}.
"""
    with open(os.path.join(refs, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)
