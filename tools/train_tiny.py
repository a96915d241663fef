#!/usr/bin/python3
# Trains deepmoe's bundled demo model (models/deepmoe-kjv-tiny): a few-million-parameter DeepSeek-V3-architecture
# MoE on the King James Bible (Debian bible-kjv-text, public domain) with its own byte-level BPE tokenizer, then
# exports it in Hugging Face layout (BF16 safetensors) and writes the reference outputs in tests/data/bundled/.
# Deterministic given --seed and the thread count. Model semantics: tools/tiny_deepseek.py (checked by
# --check-golden against the official reference's logits). Needs Debian python3-torch, python3-regex, bible-kjv.
import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_bpe  # noqa: E402
import tiny_deepseek as ds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT_EVERY, HELDOUT_OFFSET = 100, 50  # chapters with index % 100 == 50 are held out (12 of 1189)
PPL_CONTEXT = 256  # perplexity windows: BOS + 255 text tokens, no overlap (see tests/data/bundled/README.md)

MODEL_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": 4096,
    "hidden_size": 256,
    "intermediate_size": 768,
    "moe_intermediate_size": 192,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 128,
    "kv_lora_rank": 64,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "v_head_dim": 32,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "n_group": 4,
    "topk_group": 2,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "ep_size": 1,
    "num_nextn_predict_layers": 0,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    # note: YaRN with factor 1 is exactly plain RoPE (theta' = theta, mscale 1); raise factor to stretch context.
    "rope_scaling": {"type": "yarn", "factor": 1.0, "original_max_position_embeddings": 512, "beta_fast": 32,
                     "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 512,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
    "use_cache": True,
    "torch_dtype": "bfloat16",
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- corpus --------------------------------------------------------------------------------------------------------

def kjv_chapters():
    """[(book, chapter, [verse text])] in canonical order, read with the `bible` program from bible-kjv-text."""
    raw = subprocess.run(["bible", "-f", "Genesis 1:1-Revelation 22:21"], capture_output=True, check=True,
                         text=True, encoding="utf-8").stdout
    chapters, key = [], None
    for line in raw.splitlines():
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            raise ValueError(f"unexpected bible output line: {line[:80]!r}")
        k = (m.group(1), int(m.group(2)))
        if k != key:
            chapters.append((k[0], k[1], []))
            key = k
        chapters[-1][2].append(re.sub(r"\s+", " ", m.group(4)).strip())
    if len(chapters) != 1189:
        raise ValueError(f"expected 1189 chapters, got {len(chapters)}")
    return chapters


def split_corpus(chapters):
    train, held = [], []
    for i, (_, _, verses) in enumerate(chapters):
        (held if i % HELDOUT_EVERY == HELDOUT_OFFSET else train).append("\n".join(verses))
    return "\n\n".join(train) + "\n", "\n\n".join(held) + "\n", [v for i, c in enumerate(chapters)
                                                                 if i % HELDOUT_EVERY != HELDOUT_OFFSET for v in c[2]]


# ---- batches -------------------------------------------------------------------------------------------------------

class Batches:
    """Rows are BOS + a random window of the training token stream, or (chat_share of rows) BOS + chat turns
    "<User>first words of a verse<Assistant>the verse<EOS>" so that chat prompts get an answer that stops."""

    def __init__(self, tok, stream_ids, verses, seq, batch, seed, chat_share=0.1):
        self.tok, self.stream, self.verses = tok, stream_ids, verses
        self.seq, self.batch, self.chat_share = seq, batch, chat_share
        self.rng = random.Random(seed)
        self.user, self.assistant = tok.vocab[tiny_bpe.USER], tok.vocab[tiny_bpe.ASSISTANT]

    def _chat_row(self):
        row = [self.tok.bos_id()]
        while len(row) < self.seq + 1:
            verse = self.verses[self.rng.randrange(len(self.verses))]
            words = verse.split(" ")
            k = min(len(words), self.rng.randint(2, 6))
            row += [self.user] + self.tok.encode(" ".join(words[:k])) + [self.assistant] + \
                self.tok.encode(verse) + [self.tok.eos_id()]
        return row[:self.seq + 1]

    def next(self):
        rows = []
        for _ in range(self.batch):
            if self.rng.random() < self.chat_share:
                rows.append(self._chat_row())
            else:
                start = self.rng.randrange(len(self.stream) - self.seq)
                rows.append([self.tok.bos_id()] + self.stream[start:start + self.seq])
        t = torch.tensor(rows, dtype=torch.long)
        return t[:, :-1], t[:, 1:]


# ---- evaluation ----------------------------------------------------------------------------------------------------

@torch.no_grad()
def perplexity(model, ids, bos, context=PPL_CONTEXT):
    """ids: the file's tokens (no BOS). Windows of context-1 tokens, each evaluated as [BOS] + window; every window
    token is scored (the first from BOS alone). Returns (ppl, total nll, n scored tokens)."""
    nll, n = 0.0, 0
    step = context - 1
    for s in range(0, len(ids), step):
        window = ids[s:s + step]
        x = torch.tensor([[bos] + window[:-1]])
        y = torch.tensor(window)
        logp = torch.log_softmax(model(x)[0].double(), dim=-1)
        nll -= logp[torch.arange(len(window)), y].sum().item()
        n += len(window)
    return math.exp(nll / n), nll, n


@torch.no_grad()
def greedy(model, prompt_ids, n_new, eos):
    ids, gaps = list(prompt_ids), []
    for _ in range(n_new):
        logits = model(torch.tensor([ids]))[0, -1]
        top2 = logits.topk(2)
        gaps.append((top2.values[0] - top2.values[1]).item())
        ids.append(int(top2.indices[0]))
        if ids[-1] == eos:
            break
    return ids[len(prompt_ids):], min(gaps)


@torch.no_grad()
def routing_margins(model, tokens):
    """Smallest gap, over positions and MoE layers, between the last chosen and first rejected expert (biased
    scores) and between the last kept and first dropped group: how far the test sequence is from a routing tie."""
    hooks, margins = [], {"expert": float("inf"), "group": float("inf")}

    def hook(gate, inp, _out):
        x = inp[0]
        s = torch.sigmoid(F.linear(x.float(), gate.weight.float())) + gate.e_score_correction_bias
        g = s.view(x.shape[0], gate.n_group, -1)
        gs = g.topk(2, dim=-1).values.sum(-1).sort(dim=-1, descending=True).values
        margins["group"] = min(margins["group"], (gs[:, gate.topk_group - 1] - gs[:, gate.topk_group]).min().item())
        keep = gs[:, gate.topk_group - 1:gate.topk_group]
        full = g.topk(2, dim=-1).values.sum(-1)
        masked = g.masked_fill((full < keep).unsqueeze(-1), float("-inf")).flatten(1)
        top = masked.sort(dim=-1, descending=True).values
        margins["expert"] = min(margins["expert"], (top[:, gate.top_k - 1] - top[:, gate.top_k]).min().item())

    for moe in model.moe_layers():
        hooks.append(moe.gate.register_forward_hook(hook))
    model(torch.tensor([tokens]))
    for h in hooks:
        h.remove()
    return margins


# ---- golden check --------------------------------------------------------------------------------------------------

def check_golden():
    """The PyTorch model must reproduce the official reference on tests/data/golden/v3_tiny (fp32, 1e-4)."""
    gdir = os.path.join(ROOT, "tests/data/golden/v3_tiny")
    golden = json.load(open(os.path.join(gdir, "golden.json")))
    ok = True
    for weights, compute in (("hf_f32", "fp32"), ("hf_bf16", "fp32_bf16w")):
        cfg = json.load(open(os.path.join(gdir, weights, "config.json")))
        model = ds.DeepseekV3(cfg)
        ds.load_weights(model, ds.read_safetensors(os.path.join(gdir, weights, "model.safetensors")))
        model.eval()
        for seq in (("main", "long") if weights == "hf_f32" else ("main",)):
            tokens = golden["sequences"][seq]["tokens"]
            with torch.no_grad():
                got = model(torch.tensor([tokens]))[0].numpy()
            ref = np.fromfile(os.path.join(gdir, "logits", f"{seq}_{compute}_naive_prefill.f32"), "<f4")
            err = float(np.abs(got - ref.reshape(got.shape)).max())
            ok &= err <= 1e-4
            print(f"golden v3_tiny {weights} {seq}: max abs error {err:.3g} ({'ok' if err <= 1e-4 else 'FAIL'})")
    return ok


# ---- training ------------------------------------------------------------------------------------------------------

def init_weights(model, std):
    for name, p in model.named_parameters():
        if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
            torch.nn.init.ones_(p)
        elif "o_proj" in name or "down_proj" in name:  # residual branches start small (GPT-2)
            torch.nn.init.normal_(p, 0.0, std / math.sqrt(2 * model.cfg["num_hidden_layers"]))
        else:
            torch.nn.init.normal_(p, 0.0, std)


def train(model, batches, args, held_ids, bos):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    history, t0, smooth = [], time.time(), None
    for step in range(1, args.steps + 1):
        lr = args.lr * (step / args.warmup if step <= args.warmup else
                        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - args.warmup) / (args.steps - args.warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches.next()
        loss = F.cross_entropy(model(x).view(-1, model.cfg["vocab_size"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # aux-loss-free balancing (DeepSeek-V3 §2.1.2): push bias toward the mean load
            for moe in model.moe_layers():
                load = moe.last_load.float()
                moe.gate.e_score_correction_bias += args.bias_update * torch.sign(load.mean() - load)
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if step % args.log_every == 0 or step == args.steps:
            el = time.time() - t0
            log(f"step {step}/{args.steps} loss {loss.item():.4f} (smoothed {smooth:.4f}) lr {lr:.2e} "
                f"{el:.0f}s elapsed, {el / step * (args.steps - step):.0f}s left")
            history.append({"step": step, "loss": round(loss.item(), 4), "smoothed": round(smooth, 4)})
        if step % args.eval_every == 0 and step != args.steps:
            model.eval()
            ppl, _, _ = perplexity(model, held_ids[:4 * (PPL_CONTEXT - 1)], bos)
            model.train()
            log(f"step {step}: held-out perplexity (first 4 windows) {ppl:.3f}")
    return history, smooth, time.time() - t0


# ---- main ----------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check-golden", action="store_true", help="only check the model against the v3_tiny golden")
    ap.add_argument("--refs-only", action="store_true", help="skip training; rewrite tests/data/bundled from the "
                    "exported model")
    ap.add_argument("--out", default=os.path.join(ROOT, "models/deepmoe-kjv-tiny"))
    ap.add_argument("--refs", default=os.path.join(ROOT, "tests/data/bundled"))
    ap.add_argument("--seed", type=int, default=1611)
    ap.add_argument("--threads", type=int, default=1,
                    help="1 by default: on a busy 2-core machine 2 OpenMP threads spin and run several times slower")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--bias-update", type=float, default=1e-3, help="router bias step (gamma)")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--checkpoint", default="/tmp/deepmoe-kjv-tiny.pt", help="trained weights saved here first")
    ap.add_argument("--export-from", help="skip training; export the weights of this --checkpoint file")
    ap.add_argument("--time-steps", type=int, default=0, help="only time this many steps and exit")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    if args.check_golden:
        sys.exit(0 if check_golden() else 1)
    if not check_golden():
        sys.exit("the PyTorch model does not match the golden logits; not training")

    chapters = kjv_chapters()
    train_text, held_text, train_verses = split_corpus(chapters)
    log(f"corpus: {len(chapters)} chapters, train {len(train_text)} chars, held-out {len(held_text)} chars")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.refs, exist_ok=True)
    if args.refs_only:
        import tiny_export
        tok = tiny_bpe.load_tokenizer_json(os.path.join(args.out, "tokenizer.json"))
        cfg = json.load(open(os.path.join(args.out, "config.json")))
        tiny_export.write_references(cfg, tok, held_text, args, None)
        return

    t0 = time.time()
    vocab, merges = tiny_bpe.train_bpe(train_text.split("\n\n"), MODEL_CONFIG["vocab_size"], log)
    tok = tiny_bpe.Tokenizer(vocab, merges)
    log(f"tokenizer: {len(vocab)} tokens, {len(merges)} merges ({time.time() - t0:.0f}s)")
    stream = tok.encode(train_text)
    held_ids = tok.encode(held_text)
    log(f"tokens: train {len(stream)} ({len(train_text) / len(stream):.2f} chars/token), held-out {len(held_ids)}")

    torch.manual_seed(args.seed)
    cfg = dict(MODEL_CONFIG)
    model = ds.DeepseekV3(cfg)
    init_weights(model, cfg["initializer_range"])
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters")
    batches = Batches(tok, stream, train_verses, args.seq, args.batch, args.seed)
    if args.time_steps:
        args.steps, args.log_every, args.eval_every = args.time_steps, 1, 10 ** 9
    if args.export_from:
        saved = torch.load(args.export_from)
        model.load_state_dict(saved["state"])
        history, final_train, seconds = saved["history"], saved["final_train"], saved["seconds"]
    else:
        model.train()
        history, final_train, seconds = train(model, batches, args, held_ids, tok.bos_id())
        if args.time_steps:
            return
        torch.save({"state": model.state_dict(), "history": history, "final_train": final_train,
                    "seconds": seconds}, args.checkpoint)
        log(f"saved {args.checkpoint}")
    import tiny_export
    tiny_export.export_model(model, cfg, tok, args.out)
    info = {"steps": args.steps, "batch": args.batch, "seq": args.seq, "lr": args.lr, "seed": args.seed,
            "threads": args.threads, "train_seconds": round(seconds), "final_train_loss_smoothed": round(final_train, 4),
            "parameters": n_params, "train_chars": len(train_text), "train_tokens": len(stream),
            "history": history, "torch": torch.__version__}
    tiny_export.write_references(cfg, tok, held_text, args, info)


if __name__ == "__main__":
    main()
