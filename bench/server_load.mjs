// Load test of `deepmoe serve` (not a ctest): N concurrent streaming chat clients on loopback, every k-th one
// disconnecting after a few chunks. Checks that all others complete and that afterwards no generation runs and
// no KV block is referenced (/metrics back to the start value); reports p50/p99 time to first token (first chunk
// with generated text) and aggregate generated tokens/s (usage.completion_tokens of completed streams / wall time).
// Usage: node bench/server_load.mjs --deepmoe build/deepmoe [--model DIR] [--clients 64] [--max-tokens 64]
//        [--disconnect-every 8] [--threads N] [--url http://127.0.0.1:PORT (a running server; --model unused)]
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import * as L from '../tests/server_e2e/lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) =>
  (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []));
const nClients = Number(args.clients ?? 64), maxTokens = Number(args['max-tokens'] ?? 64);
const every = Number(args['disconnect-every'] ?? 8), timeLimitMs = Number(args['time-limit-s'] ?? 300) * 1000;
const here = path.dirname(new URL(import.meta.url).pathname);
const data = path.join(here, '..', 'tests', 'data');

let srv = null, base = args.url, modelId = null;
if (!base) {
  if (!args.deepmoe) { console.error('give --deepmoe BIN (and optionally --model DIR) or --url'); process.exit(2); }
  let dir = args.model;
  if (!dir) {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dm-load-')), 'dsv3-tiny');
    L.synthDeepseek(args.deepmoe, data, dir);
  }
  srv = await L.startServer(args.deepmoe, ['-m', dir, '--max-concurrency', String(nClients), '--ctx-size', '1024',
    ...(args.threads ? ['-t', args.threads] : [])]);
  base = srv.base;
}
modelId = (await (await fetch(`${base}/v1/models`)).json()).data[0].id;
const m0 = await L.waitIdle(base);
const blocks0 = L.metricSum(m0, 'deepmoe_kv_blocks_used');

async function client(i) {
  const leave = every > 0 && i % every === every - 1;
  const ac = new AbortController();
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', signal: ac.signal,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: modelId, stream: true, stream_options: { include_usage: true }, max_tokens: maxTokens,
      temperature: 1, seed: i, messages: [{ role: 'user', content: `Client ${i}: tell me a long story about the sea.` }] }) });
  if (r.status !== 200) return { i, leave, ok: false, error: `HTTP ${r.status} ${await r.text()}` };
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = '', ttft = null, chunks = 0, usage = null, done = false, finish = null;
  try {
    while (!done) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      buf += dec.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, k); buf = buf.slice(k + 2);
        if (!ev.startsWith('data: ')) continue;
        if (ev === 'data: [DONE]') { done = true; break; }
        const j = JSON.parse(ev.slice(6));
        if (j.usage) usage = j.usage;
        const d = j.choices[0]?.delta ?? {};
        if (j.choices[0]?.finish_reason) finish = j.choices[0].finish_reason;
        if ((d.content || d.reasoning_content) && ttft === null) ttft = performance.now() - t0;
        if (d.content || d.reasoning_content) chunks++;
        if (leave && chunks >= 3) { ac.abort(); return { i, leave, ok: true, ttft, left: true }; }
      }
    }
  } catch (e) {
    return { i, leave, ok: leave, ttft, error: String(e) };
  }
  return { i, leave, ok: done && finish !== null, ttft, usage, finish };
}

const t0 = performance.now();
const timer = setTimeout(() => { console.error(`time limit of ${timeLimitMs / 1000} s reached`); process.exit(1); }, timeLimitMs);
const results = await Promise.all(Array.from({ length: nClients }, (_, i) => client(i)));
const wall = (performance.now() - t0) / 1000;
clearTimeout(timer);
const m1 = await L.waitIdle(base, {}, 10000);

const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const stayed = results.filter((r) => !r.leave), left = results.filter((r) => r.leave);
const failed = stayed.filter((r) => !r.ok);
const tokens = stayed.reduce((s, r) => s + (r.usage?.completion_tokens ?? 0), 0);
const ttfts = results.map((r) => r.ttft).filter((x) => x !== null && x !== undefined);
const blocks1 = L.metricSum(m1, 'deepmoe_kv_blocks_used');
console.log(`server_load: ${nClients} streaming clients, max_tokens ${maxTokens}, ${left.length} disconnecting after 3 chunks`);
console.log(`  completed ${stayed.length - failed.length}/${stayed.length}, disconnected ${left.filter((r) => r.left).length}/${left.length}`);
console.log(`  time to first token: p50 ${q(ttfts, 0.5).toFixed(1)} ms, p99 ${q(ttfts, 0.99).toFixed(1)} ms (${ttfts.length} clients)`);
console.log(`  generated ${tokens} tokens by completed streams in ${wall.toFixed(2)} s: ${(tokens / wall).toFixed(1)} tokens/s aggregate`);
console.log(`  after: requests running ${m1.deepmoe_requests_running}, engine running ${L.metricSum(m1, 'deepmoe_engine_running')}, ` +
  `KV blocks used ${blocks1} (start ${blocks0}), preemptions ${L.metricSum(m1, 'deepmoe_preemptions_total')}`);
for (const f of failed) console.log(`  FAILED client ${f.i}: ${f.error ?? JSON.stringify(f)}`);
const ok = failed.length === 0 && blocks1 === blocks0 && m1.deepmoe_requests_running === 0 &&
  L.metricSum(m1, 'deepmoe_engine_running') === 0;
if (srv) { srv.proc.kill('SIGTERM'); console.log(`  server exit code ${await srv.exited}`); }
console.log(ok ? 'server_load: OK' : 'server_load: FAILED');
process.exit(ok ? 0 : 1);
