# DeepSeek-V3 architecture in PyTorch for training the bundled demo model, plus a minimal safetensors reader/writer.
# Semantics follow /work/shared/DESIGN.md, i.e. the official DeepSeek-V3 inference/model.py (MLA with q/kv LoRA,
# RoPE on adjacent pairs with YaRN, sigmoid noaux_tc grouped routing, shared expert, dense first layers); checked
# against tests/data/golden/v3_tiny by `train_tiny.py --check-golden`. Parameter names are the HF checkpoint names.
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def yarn_mscale(factor, mscale):
    return 1.0 if factor <= 1 or not mscale else 0.1 * mscale * math.log(factor) + 1.0


def rope_inv_freq(cfg):
    """theta_i [qk_rope_head_dim/2], with YaRN's ramp between the extrapolated and interpolated frequencies."""
    d, base = cfg["qk_rope_head_dim"], cfg["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("type", rs.get("rope_type")) == "yarn":
        factor, orig = rs["factor"], rs["original_max_position_embeddings"]

        def corr(r):
            return d * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(corr(rs.get("beta_fast", 32))), 0)
        high = min(math.ceil(corr(rs.get("beta_slow", 1))), d - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        inv_freq = inv_freq * (1 - ramp) + inv_freq / factor * ramp
    return inv_freq.float()


def softmax_scale(cfg):
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs and rs.get("type", rs.get("rope_type")) == "yarn":
        m = yarn_mscale(rs["factor"], rs.get("mscale_all_dim", 0))
        scale *= m * m
    return scale


def apply_rope_adjacent(x, cos, sin):
    """x [..., T, heads, d]; rotates the pairs (2i, 2i+1) by angle pos*theta_i. cos/sin [T, d/2]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    """Multi-head latent attention, naive (per-head K/V) form."""

    def __init__(self, cfg):
        super().__init__()
        h, self.n_heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.nope, self.rope = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
        self.v_dim, self.kv_rank = cfg["v_head_dim"], cfg["kv_lora_rank"]
        eps = cfg["rms_norm_eps"]
        self.q_a_proj = nn.Linear(h, cfg["q_lora_rank"], bias=False)  # [q_lora_rank, hidden]
        self.q_a_layernorm = RMSNorm(cfg["q_lora_rank"], eps)
        self.q_b_proj = nn.Linear(cfg["q_lora_rank"], self.n_heads * (self.nope + self.rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(h, self.kv_rank + self.rope, bias=False)  # [kv_lora_rank+rope, hidden]
        self.kv_a_layernorm = RMSNorm(self.kv_rank, eps)
        self.kv_b_proj = nn.Linear(self.kv_rank, self.n_heads * (self.nope + self.v_dim), bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.v_dim, h, bias=False)  # [hidden, n_heads*v_head_dim]
        self.scale = softmax_scale(cfg)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, self.n_heads, self.nope + self.rope)
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        q_pe = apply_rope_adjacent(q_pe, cos, sin)
        c_kv, k_pe = self.kv_a_proj_with_mqa(x).split([self.kv_rank, self.rope], dim=-1)
        k_pe = apply_rope_adjacent(k_pe.unsqueeze(2), cos, sin)  # [B, T, 1, rope], shared by all heads
        kv = self.kv_b_proj(self.kv_a_layernorm(c_kv)).view(B, T, self.n_heads, self.nope + self.v_dim)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        q = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # [B, H, T, nope+rope]
        k = torch.cat([k_nope, k_pe.expand(-1, -1, self.n_heads, -1)], dim=-1).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * self.scale  # [B, H, T, T]
        mask = torch.full((T, T), float("-inf")).triu(1)
        probs = torch.softmax(scores + mask, dim=-1)
        out = (probs @ v.transpose(1, 2)).transpose(1, 2).reshape(B, T, self.n_heads * self.v_dim)
        return self.o_proj(out)


class SwiGLU(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)  # [inter, hidden]
        self.up_proj = nn.Linear(hidden, inter, bias=False)  # [inter, hidden]
        self.down_proj = nn.Linear(inter, hidden, bias=False)  # [hidden, inter]

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Sigmoid router with noaux_tc grouped top-k selection; the bias only steers selection."""

    def __init__(self, cfg):
        super().__init__()
        n = cfg["n_routed_experts"]
        self.weight = nn.Parameter(torch.empty(n, cfg["hidden_size"]))  # [n_routed_experts, hidden]
        self.register_buffer("e_score_correction_bias", torch.zeros(n))  # fp32, updated outside the optimizer
        self.top_k, self.n_group, self.topk_group = cfg["num_experts_per_tok"], cfg["n_group"], cfg["topk_group"]
        self.norm_topk_prob, self.scale = cfg["norm_topk_prob"], cfg["routed_scaling_factor"]
        assert cfg["scoring_func"] == "sigmoid" and cfg["topk_method"] == "noaux_tc"

    def forward(self, x):
        """x [N, hidden] -> (weights [N, top_k], indices [N, top_k])."""
        s = torch.sigmoid(F.linear(x.float(), self.weight.float()))  # [N, n_routed_experts]
        biased = s.detach() + self.e_score_correction_bias
        if self.n_group > 1:
            g = biased.view(x.shape[0], self.n_group, -1)
            group_scores = g.topk(2, dim=-1).values.sum(-1)  # [N, n_group]
            keep = group_scores.topk(self.topk_group, dim=-1).indices
            mask = torch.ones_like(group_scores, dtype=torch.bool).scatter_(1, keep, False)
            biased = g.masked_fill(mask.unsqueeze(-1), float("-inf")).flatten(1)
        idx = biased.topk(self.top_k, dim=-1).indices
        w = s.gather(1, idx)
        if self.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        return w * self.scale, idx


class MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, inter = cfg["hidden_size"], cfg["moe_intermediate_size"]
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList(SwiGLU(h, inter) for _ in range(cfg["n_routed_experts"]))
        self.shared_experts = SwiGLU(h, inter * cfg["n_shared_experts"])
        self.last_load = None  # tokens per expert in the last forward, for the bias update

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        w, idx = self.gate(x)
        out = self.shared_experts(x)
        self.last_load = torch.bincount(idx.flatten(), minlength=len(self.experts))
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            y = expert(x[tok]) * w[tok, slot].unsqueeze(-1).to(x.dtype)
            out = out.index_add(0, tok, y)
        return out.view(shape)


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = MLA(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        dense = layer < cfg["first_k_dense_replace"]
        self.mlp = SwiGLU(cfg["hidden_size"], cfg["intermediate_size"]) if dense else MoE(cfg)

    def forward(self, h, cos, sin):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class Inner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class DeepseekV3(nn.Module):
    """Parameter names match HF DeepseekV3ForCausalLM (model.*, lm_head.weight)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Inner(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)

    def forward(self, tokens):
        """tokens [B, T] (positions 0..T-1) -> logits [B, T, vocab] fp32."""
        T = tokens.shape[1]
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]  # [T, rope/2]
        cos, sin = ang.cos(), ang.sin()
        h = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            h = layer(h, cos, sin)
        return self.lm_head(self.model.norm(h)).float()

    def moe_layers(self):
        return [l.mlp for l in self.model.layers if isinstance(l.mlp, MoE)]


# ---- safetensors -------------------------------------------------------------------------------------------------

_NP = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    """name -> fp32 torch tensor (BF16 is widened exactly)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = data[a:b]
        if meta["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NP[meta["dtype"]]).newbyteorder("<")).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(meta["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    """tensors: name -> torch tensor (float32 or bfloat16); written in sorted name order, 8-byte aligned header."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
            dt = "BF16"
        else:
            raw = t.float().numpy().astype("<f4").tobytes()
            dt = "F32"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


def load_weights(model, tensors):
    """Copies HF-named tensors into the model; every parameter and router bias must be present, none extra."""
    want = dict(model.named_parameters())
    want.update({n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")})
    missing, extra = set(want) - set(tensors), set(tensors) - set(want)
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}")
    with torch.no_grad():
        for name, t in want.items():
            if tuple(t.shape) != tuple(tensors[name].shape):
                raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, expected {tuple(t.shape)}")
            t.copy_(tensors[name])
