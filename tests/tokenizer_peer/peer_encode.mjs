// Peer encoder for the tokenizer peer test: encodes every string of a corpus with @huggingface/transformers
// (the JS port of Hugging Face tokenizers), offline, for each tokenizer folder given.
// usage: node peer_encode.mjs NODE_MODULES_DIR TOKENIZERS_ROOT CORPUS.json OUT.json DIR...
// OUT.json: {"DIR": {"plain": [[ids]...], "special": [[ids]...]}, ...} in corpus order.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { pathToFileURL } from 'node:url';

const [nodeModules, root, corpusPath, outPath, ...dirs] = process.argv.slice(2);
const entry = path.join(nodeModules, '@huggingface', 'transformers', 'dist', 'transformers.node.mjs');
const fallback = path.join(nodeModules, '@huggingface', 'transformers', 'dist', 'transformers.js');
const { AutoTokenizer, env } = await import(pathToFileURL(fs.existsSync(entry) ? entry : fallback).href);

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useBrowserCache = false;
env.useFSCache = false;

// transformers.js wants a tokenizer_config.json; a folder without one (qwen2.5) gets an empty one in a copy.
const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-peer-'));
env.localModelPath = staging + path.sep;

const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
const out = {};
try {
  for (const dir of dirs) {
    const dst = path.join(staging, dir);
    fs.mkdirSync(dst);
    fs.copyFileSync(path.join(root, dir, 'tokenizer.json'), path.join(dst, 'tokenizer.json'));
    const cfg = path.join(root, dir, 'tokenizer_config.json');
    if (fs.existsSync(cfg)) fs.copyFileSync(cfg, path.join(dst, 'tokenizer_config.json'));
    else fs.writeFileSync(path.join(dst, 'tokenizer_config.json'), '{}');
    const tok = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    out[dir] = {
      plain: corpus.map((t) => Array.from(tok.encode(t, { add_special_tokens: false }))),
      special: corpus.map((t) => Array.from(tok.encode(t, { add_special_tokens: true }))),
    };
  }
} finally {
  fs.rmSync(staging, { recursive: true, force: true });
}
fs.writeFileSync(outPath, JSON.stringify(out));
