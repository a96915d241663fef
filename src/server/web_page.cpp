// A minimal chat UI: picks a model from /v1/models, streams replies over SSE, shows reasoning_content dimmed
// apart from the answer, keeps the conversation (without reasoning, as DeepSeek recommends) for the next turn.
#include "server/web_page.h"

namespace dm {

const char* const kWebPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>deepmoe</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:860px;margin:0 auto;padding:1rem;background:#fafafa;color:#222}
 header{display:flex;gap:1rem;align-items:center} h1{font-size:1.3rem;margin:0}
 #log{margin:1rem 0;display:flex;flex-direction:column;gap:.6rem}
 .msg{padding:.6rem .8rem;border-radius:8px;white-space:pre-wrap;line-height:1.4}
 .user{background:#dbeafe;align-self:flex-end;max-width:80%} .assistant{background:#fff;border:1px solid #ddd}
 .reasoning{color:#888;font-style:italic;border-left:3px solid #ccc;padding-left:.5rem;margin-bottom:.4rem}
 .stats{color:#999;font-size:.8rem} form{display:flex;gap:.5rem} textarea{flex:1;min-height:3rem;font:inherit}
 button{font:inherit;padding:0 1rem}
</style></head><body>
<header><h1>deepmoe</h1><select id="model"></select><button id="reset" type="button">New chat</button></header>
<div id="log"></div>
<form id="f"><textarea id="q" placeholder="Ask something (Enter to send, Shift+Enter for a new line)"></textarea>
<button id="send">Send</button></form>
<script>
const log = document.getElementById('log'), q = document.getElementById('q'), sel = document.getElementById('model');
let history = [], busy = false;
fetch('/v1/models').then(r => r.json()).then(j => {
  for (const m of j.data) { const o = document.createElement('option'); o.value = o.textContent = m.id; sel.appendChild(o); }
});
function add(cls, text) { const d = document.createElement('div'); d.className = 'msg ' + cls; d.textContent = text; log.appendChild(d); return d; }
document.getElementById('reset').onclick = () => { history = []; log.innerHTML = ''; };
q.addEventListener('keydown', e => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); } });
document.getElementById('f').onsubmit = e => { e.preventDefault(); send(); };
async function send() {
  const text = q.value.trim(); if (!text || busy) return;
  busy = true; q.value = ''; add('user', text); history.push({role: 'user', content: text});
  const box = add('assistant', ''), think = document.createElement('div'), answer = document.createElement('div');
  think.className = 'reasoning'; box.appendChild(think); box.appendChild(answer);
  let content = '', t0 = performance.now(), n = 0;
  try {
    const r = await fetch('/v1/chat/completions', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({model: sel.value, messages: history, stream: true, stream_options: {include_usage: true}})});
    if (!r.ok) { answer.textContent = 'error: ' + ((await r.json()).error || {}).message; throw 0; }
    const reader = r.body.getReader(), dec = new TextDecoder(); let buf = '';
    for (;;) {
      const {value, done} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true});
      let i; while ((i = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6); if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.usage) { n = j.usage.completion_tokens; continue; }
        const d = (j.choices[0] || {}).delta || {};
        if (d.reasoning_content) think.textContent += d.reasoning_content;
        if (d.content) { content += d.content; answer.textContent = content; }
      }
    }
    history.push({role: 'assistant', content});
    const s = document.createElement('div'); s.className = 'stats';
    s.textContent = n + ' tokens, ' + (n / ((performance.now() - t0) / 1000)).toFixed(1) + ' tok/s'; box.appendChild(s);
  } catch (e) { if (e) answer.textContent += ' [' + e + ']'; }
  if (!think.textContent) think.remove();
  busy = false; window.scrollTo(0, document.body.scrollHeight);
}
</script></body></html>
)HTML";

}  // namespace dm
