#!/usr/bin/python3
# Peer test for deepmoe's chat templates: every fixture template (tests/data/fixtures/templates and the model
# directories in tests/data/fixtures/tokenizers) is rendered by Python's Jinja2 exactly as transformers renders it
# (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the generation tag, tojson =
# json.dumps(ensure_ascii=False), raise_exception, strftime_now) over a set of conversations, and by deepmoe.
# Outputs must be byte-identical; where Jinja2 raises, deepmoe must fail with an error (and not crash).
# Exit 77 = skipped (no jinja2), except under CI=true where a missing jinja2 fails the test.
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    if os.environ.get("CI") == "true":
        print("FAIL: python3-jinja2 is not installed (required under CI)")
        sys.exit(1)
    print("SKIP: python3-jinja2 is not installed")
    sys.exit(77)


class AssistantTracker(Extension):
    """transformers' {% generation %} tag: renders its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(t):
    if isinstance(t, dict):
        return t.get("content")
    return t


def load_model_dir(d):
    """(default template, tool_use template or None, special tokens) as transformers loads them."""
    config = {}
    if os.path.exists(os.path.join(d, "tokenizer_config.json")):
        with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
    tokens = {}
    for name in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        if config.get(name) is not None:
            tokens[name] = token_text(config[name])
    if isinstance(config.get("additional_special_tokens"), list):
        tokens["additional_special_tokens"] = [token_text(t) for t in config["additional_special_tokens"]]
    jinja_path = os.path.join(d, "chat_template.jinja")
    if os.path.exists(jinja_path):
        with open(jinja_path, encoding="utf-8", newline="") as f:
            return f.read(), None, tokens
    ct = config["chat_template"]
    if isinstance(ct, str):
        return ct, None, tokens
    named = {e["name"]: e["template"] for e in ct}
    return named["default"], named.get("tool_use"), tokens


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                   "limit": {"type": "integer", "minimum": 1}}}}}


def call(id_, name, args, as_string=True):
    return {"id": id_, "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args}}


def conversations():
    sys_msg = {"role": "system", "content": "You are a helpful assistant."}
    convs = {
        "single_user": [{"role": "user", "content": "Why is the sky blue?"}],
        "system_user": [sys_msg, {"role": "user", "content": "Hello!"}],
        "multi_turn": [sys_msg, {"role": "user", "content": "What is 2+2?"},
                       {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?"}],
        "reasoning_history": [{"role": "user", "content": "Think: 7*8?"},
                              {"role": "assistant", "content": "56", "reasoning_content": "7*8 = 56."},
                              {"role": "user", "content": "Thanks. Now 9*9?"},
                              {"role": "assistant", "content": "<think>\n9*9=81\n</think>\n\n81"}],
        "think_in_content": [{"role": "user", "content": "Q1"},
                             {"role": "assistant", "content": "<think>\nsome thought\n</think>\n\nA1"},
                             {"role": "user", "content": "Q2"}],
        "unicode": [{"role": "user", "content": "héllo wörld — 世界 🎉 \u2028 naïve \"quotes\" and 'single' \\ back"}],
        "jinja_lookalike": [{"role": "system", "content": "{% if x %}not a tag{% endif %}"},
                            {"role": "user", "content": "{{ messages }} {# not a comment #} {%- raw %}"}],
        "empty_content": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
                          {"role": "user", "content": "  spaced  \n"}],
        "two_systems": [sys_msg, {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "content_parts": [{"role": "user", "content": [{"type": "text", "text": "part one "},
                                                       {"type": "text", "text": "part two"}]}],
        "tool_call_flow": [sys_msg, {"role": "user", "content": "Weather in Paris?"},
                           {"role": "assistant", "content": None,
                            "tool_calls": [call("call_1", "get_weather", {"city": "Paris", "unit": "celsius"})]},
                           {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
                           {"role": "assistant", "content": "It is 21°C and clear in Paris."}],
        "tool_call_pending": [{"role": "user", "content": "Weather in Paris and Rome?"},
                              {"role": "assistant", "content": "",
                               "tool_calls": [call("c1", "get_weather", {"city": "Paris"}),
                                              call("c2", "get_weather", {"city": "Rome"})]},
                              {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                              {"role": "tool", "tool_call_id": "c2", "content": "rainy"}],
        "tool_call_dict_args": [{"role": "user", "content": "Search for jinja"},
                                {"role": "assistant", "content": "Let me search.",
                                 "tool_calls": [call("c9", "search", {"query": "jinja", "limit": 3,
                                                                      "filters": {"lang": ["en", "de"]}},
                                                     as_string=False)]},
                                {"role": "tool", "tool_call_id": "c9", "content": "3 results"}],
        "assistant_prefill": [{"role": "user", "content": "Start a poem"},
                              {"role": "assistant", "content": "Roses are"}],
        "no_user": [sys_msg],
    }
    return convs


def requests():
    tools = [WEATHER_TOOL, SEARCH_TOOL]
    for cname, msgs in conversations().items():
        with_tools = cname.startswith("tool") or cname in ("single_user", "system_user")
        for agp, kwargs in [(False, None), (True, None), (True, {"enable_thinking": True}),
                            (True, {"enable_thinking": False})]:
            req = {"messages": msgs, "add_generation_prompt": agp}
            if kwargs is not None:
                req["chat_template_kwargs"] = kwargs
            yield f"{cname}/agp={agp}/kw={kwargs}", req
            if with_tools and not agp:
                yield f"{cname}/tools/kw={kwargs}", dict(req, tools=tools, add_generation_prompt=True)


def family_tokens(name):
    n = name.lower()
    if "deepseek" in n:
        return {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}
    if "llama" in n:
        return {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    return {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


_compiled = {}


def render_py(env, template, tool_template, tokens, req):
    tmpl = tool_template if (req.get("tools") is not None and tool_template) else template
    if tmpl not in _compiled:
        try:
            _compiled[tmpl] = env.from_string(tmpl)
        except Exception as e:  # a template Jinja2 cannot compile fails every render
            _compiled[tmpl] = e
    compiled = _compiled[tmpl]
    if isinstance(compiled, Exception):
        raise compiled
    kwargs = dict(tokens)
    kwargs.update(req.get("chat_template_kwargs") or {})
    return compiled.render(messages=copy.deepcopy(req["messages"]), tools=copy.deepcopy(req.get("tools")),
                           documents=None, add_generation_prompt=req.get("add_generation_prompt", False), **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", required=True)
    ap.add_argument("--deepmoe", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    env = make_env()
    work = tempfile.mkdtemp(prefix="dm_chat_peer_")

    model_dirs = []
    tok_root = os.path.join(args.data, "fixtures", "tokenizers")
    for name in sorted(os.listdir(tok_root)):
        d = os.path.join(tok_root, name)
        if os.path.exists(os.path.join(d, "chat_template.jinja")) or os.path.exists(os.path.join(d, "tokenizer_config.json")):
            with open(os.path.join(d, "tokenizer_config.json") if os.path.exists(os.path.join(d, "tokenizer_config.json")) else os.devnull) as f:
                txt = f.read()
            if os.path.exists(os.path.join(d, "chat_template.jinja")) or "chat_template" in txt:
                model_dirs.append(("tokenizers/" + name, d))
    tmpl_root = os.path.join(args.data, "fixtures", "templates")
    for name in sorted(os.listdir(tmpl_root)):
        d = os.path.join(work, "models", name)
        os.makedirs(d)
        with open(os.path.join(tmpl_root, name), "rb") as src, open(os.path.join(d, "chat_template.jinja"), "wb") as dst:
            dst.write(src.read())
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(family_tokens(name), f, ensure_ascii=False)
        model_dirs.append(("templates/" + name, d))

    cases, expected = [], []
    for label, d in model_dirs:
        template, tool_template, tokens = load_model_dir(d)
        for rname, req in requests():
            cases.append({"model_dir": d, "request": req, "label": f"{label} :: {rname}"})
            try:
                expected.append((True, render_py(env, template, tool_template, tokens, req)))
            except Exception as e:  # any Jinja2 failure: deepmoe must fail too
                expected.append((False, f"{type(e).__name__}: {e}"))

    cases_path, out_path = os.path.join(work, "cases.json"), os.path.join(work, "out.json")
    with open(cases_path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    proc = subprocess.run([args.render, cases_path, out_path])
    if proc.returncode != 0:
        print(f"FAIL: {args.render} exited with {proc.returncode}")
        return 1
    with open(out_path, encoding="utf-8") as f:
        results = json.load(f)

    failures, both_ok, both_err = [], 0, 0
    per_template_ok = {label: 0 for label, _ in model_dirs}
    for case, (ok, exp), res in zip(cases, expected, results):
        label = case["label"]
        if ok:
            per_template_ok[label.split(" :: ")[0]] += 1
            if not res["ok"]:
                failures.append(f"{label}: Jinja2 rendered, deepmoe failed: {res['error']}")
            elif res["output"] != exp:
                got = res["output"]
                i = next((k for k in range(min(len(got), len(exp))) if got[k] != exp[k]), min(len(got), len(exp)))
                failures.append(f"{label}: output differs at char {i}:\n  jinja2:  {exp[max(0, i-60):i+60]!r}\n"
                                f"  deepmoe: {got[max(0, i-60):i+60]!r}")
            else:
                both_ok += 1
        else:
            if res["ok"]:
                failures.append(f"{label}: Jinja2 raised ({exp}) but deepmoe rendered {res['output'][:200]!r}")
            elif exp.startswith("TemplateError: ") and exp[len("TemplateError: "):] not in res["error"]:
                failures.append(f"{label}: raise_exception message lost: Jinja2 {exp!r}, deepmoe {res['error']!r}")
            else:
                both_err += 1
    for label, n in per_template_ok.items():
        if n == 0:
            failures.append(f"{label}: no case rendered in Jinja2; the test would prove nothing")

    # The CLI end to end: same bytes on stdout, and a clean non-zero exit on a template error.
    cli_checked = 0
    for case, (ok, exp) in list(zip(cases, expected))[::37]:
        req_path = os.path.join(work, "req.json")
        with open(req_path, "w", encoding="utf-8") as f:
            json.dump(case["request"], f, ensure_ascii=False)
        p = subprocess.run([args.deepmoe, "template", "--model", case["model_dir"], "--request", req_path],
                           capture_output=True)
        cli_checked += 1
        if ok and (p.returncode != 0 or p.stdout.decode("utf-8") != exp):
            failures.append(f"CLI {case['label']}: rc={p.returncode} stderr={p.stderr[:300]!r}")
        if not ok and (p.returncode != 1 or b"template error" not in p.stderr):
            failures.append(f"CLI {case['label']}: expected a clean template error, rc={p.returncode} "
                            f"stderr={p.stderr[:300]!r}")

    print(f"chat peer: {len(cases)} cases over {len(model_dirs)} templates: {both_ok} identical, "
          f"{both_err} fail in both; {cli_checked} CLI runs; {len(failures)} failures")
    for f in failures[:40]:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
