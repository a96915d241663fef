// Helpers for the server end-to-end test and the load bench: synthesize tiny models with `deepmoe synth`, start
// `deepmoe serve` on a free loopback port, read /metrics, and "steer" a model whose logits are all zero so that
// logit_bias alone decides what it writes (used to produce exact reasoning / tool-call text deterministically).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// A tiny DeepSeek-V3 (MLA + MoE, 2 layers, hidden 64) with the R1 tokenizer and random weights.
export function synthDeepseek(deepmoe, data, out) {
  const set = ['num_hidden_layers=2', 'hidden_size=64', 'intermediate_size=128', 'moe_intermediate_size=32',
    'n_routed_experts=8', 'num_experts_per_tok=2', 'n_group=2', 'topk_group=1', 'first_k_dense_replace=1',
    'num_attention_heads=2', 'num_key_value_heads=2', 'q_lora_rank=32', 'kv_lora_rank=32',
    'qk_nope_head_dim=16', 'qk_rope_head_dim=16', 'v_head_dim=16'];
  synth(deepmoe, `${data}/fixtures/configs/deepseek-r1`, `${data}/fixtures/tokenizers/deepseek-r1`, set, out);
}

// A tiny Qwen3 (1 layer, hidden 64) with the Qwen3 tokenizer (chat template opens <think>, Hermes tool calls),
// whose final norm is zeroed: every logit is exactly 0, so the output is decided by logit_bias and penalties.
export function synthSteerableQwen3(deepmoe, data, out) {
  const set = ['num_hidden_layers=1', 'hidden_size=64', 'intermediate_size=128', 'num_attention_heads=2',
    'num_key_value_heads=1', 'head_dim=32'];
  synth(deepmoe, `${data}/fixtures/configs/qwen3-4b-2507-modelcard`, `${data}/fixtures/tokenizers/qwen3`, set, out);
  zeroTensor(path.join(out, 'model.safetensors'), 'model.norm.weight');
}

function synth(deepmoe, config, tokenizer, set, out) {
  fs.rmSync(out, { recursive: true, force: true });
  const args = ['synth', '--config', config, '--tokenizer', tokenizer, '--dtype', 'bf16', '--out', out, '-t', '2'];
  for (const s of set) args.push('--set', s);
  execFileSync(deepmoe, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

// Overwrites one tensor of a safetensors file with zeros (header: u64 length, JSON with data_offsets).
export function zeroTensor(file, name) {
  const fd = fs.openSync(file, 'r+');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const hdr = Buffer.alloc(n);
    fs.readSync(fd, hdr, 0, n, 8);
    const t = JSON.parse(hdr.toString('utf8'))[name];
    if (!t) throw new Error(`${file}: no tensor ${name}`);
    const [b, e] = t.data_offsets;
    fs.writeSync(fd, Buffer.alloc(e - b), 0, e - b, 8 + n + b);
  } finally {
    fs.closeSync(fd);
  }
}

// GPT-2 byte-level alphabet: byte -> the character tokenizer.json's vocab uses for it.
function byteChars() {
  const keep = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  return map;
}

// Splits `text` into vocabulary tokens, longest match first, never using a token twice (so that a presence
// penalty can walk the bias ladder below). Added tokens such as <tool_call> are matched whole.
export class Steering {
  constructor(tokenizerJsonPath) {
    const t = JSON.parse(fs.readFileSync(tokenizerJsonPath, 'utf8'));
    this.vocab = new Map(Object.entries(t.model.vocab));
    this.added = t.added_tokens.map((a) => [a.content, a.id]).sort((a, b) => b[0].length - a[0].length);
    this.chars = byteChars();
  }
  encodeBytes(s) { return [...Buffer.from(s, 'utf8')].map((b) => this.chars[b]).join(''); }
  // text -> [{id, piece}] with distinct ids whose pieces concatenate to text. Added tokens are taken whole where
  // they occur; the text between them is cut depth-first, longest piece first.
  tokens(text) {
    const used = new Set(), out = [];
    let seg = '';
    for (let i = 0; i < text.length;) {
      const hit = this.added.find(([c]) => text.startsWith(c, i));
      if (!hit) { seg += text[i++]; continue; }
      this.cut(seg, used, out); seg = '';
      if (used.has(hit[1])) throw new Error(`${hit[0]} appears twice`);
      used.add(hit[1]); out.push({ id: hit[1], piece: hit[0] }); i += hit[0].length;
    }
    this.cut(seg, used, out);
    return out;
  }
  cut(text, used, out) {
    let budget = 200000;
    const walk = (i) => {
      if (i === text.length) return true;
      if (--budget < 0) return false;
      for (let j = text.length; j > i; j--) {
        const id = this.vocab.get(this.encodeBytes(text.slice(i, j)));
        if (id === undefined || used.has(id)) continue;
        used.add(id); out.push({ id, piece: text.slice(i, j) });
        if (walk(j)) return true;
        used.delete(id); out.pop();
      }
      return false;
    };
    if (!walk(0)) throw new Error(`cannot steer through ${JSON.stringify(text)} with distinct tokens`);
  }
  // Sampling fields that make a zero-logit model write exactly `ids` in order (greedy): token k gets bias
  // 100 - 0.05k; once written, presence + frequency penalty (2 + 2) push it 4 below every unwritten rung.
  request(ids) {
    if (ids.length > 70) throw new Error('steered text too long for the bias ladder');
    const logit_bias = {};
    ids.forEach((id, k) => { logit_bias[String(id)] = 100 - 0.05 * k; });
    return { logit_bias, temperature: 0, presence_penalty: 2, frequency_penalty: 2 };
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// Starts `deepmoe serve` and waits for /health. Returns {proc, base, port, stderr(), exited (promise of code)}.
export async function startServer(deepmoe, args, { timeoutMs = 60000, env = {} } = {}) {
  const port = await freePort();
  const proc = spawn(deepmoe, ['serve', '--host', '127.0.0.1', '--port', String(port), ...args],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr.on('data', (d) => { err += d.toString(); if (process.env.DM_SERVER_LOG) process.stderr.write(d); });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal)));
  let done = false;
  exited.then(() => { done = true; });
  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (done) throw new Error(`deepmoe serve exited early:\n${err}`);
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() - t0 > timeoutMs) { proc.kill('SIGKILL'); throw new Error(`deepmoe serve did not start:\n${err}`); }
    await sleep(50);
  }
  return { proc, base, port, exited, stderr: () => err };
}

// /metrics as {name or name{labels}: value}.
export async function metrics(base, headers = {}) {
  const r = await fetch(`${base}/metrics`, { headers });
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

// Sum of a metric over its labels (e.g. deepmoe_kv_blocks_used over models).
export function metricSum(m, name) {
  let s = 0;
  for (const [k, v] of Object.entries(m)) if (k === name || k.startsWith(name + '{')) s += v;
  return s;
}

// Waits until no generation runs and no KV block is referenced; returns the last metrics.
export async function waitIdle(base, headers = {}, timeoutMs = 10000) {
  const t0 = Date.now();
  for (;;) {
    const m = await metrics(base, headers);
    if (m.deepmoe_requests_running === 0 && metricSum(m, 'deepmoe_engine_running') === 0 &&
        metricSum(m, 'deepmoe_kv_blocks_used') === 0) return m;
    if (Date.now() - t0 > timeoutMs) return m;
    await sleep(50);
  }
}
