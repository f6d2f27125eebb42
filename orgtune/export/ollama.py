"""Ollama Modelfile whose TEMPLATE renders exactly like the model's own (HF, Jinja) chat template.

Ollama's TEMPLATE is a Go text/template executed over {System, Messages, Tools, Response}. orgtune does
not guess it from a table of known models: it renders the tokenizer's chat template on probe
conversations, takes the pieces the template writes around the system prompt, each turn and the
generation prompt, and assembles a Go template from them for the chat family (ChatML, Llama 3). Then
`verify_template` executes that TEMPLATE with Go itself (text/template, the way Ollama does: system
messages collated into .System) and compares the result with the Jinja rendering, byte for byte.

Known limits, by design of Ollama's template language: it has no `trim`, so Llama 3's trimming of
message text is not reproduced (orgtune's own data has no surrounding whitespace), and Ollama merges
consecutive messages of the same role, which HF templates do not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orgtune.errors import OrgtuneError

GO_RENDERER = Path(__file__).with_name("gotemplate") / "render.go"

# Design-note sampling defaults for the shipped model.
SAMPLING = {"temperature": 0.0, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}

_S, _U, _A, _U2 = "ORGTUNE-SYSTEM-7f3a", "ORGTUNE-USER-51c2", "ORGTUNE-ASSISTANT-9d04", "ORGTUNE-USER-e6b8"

# Conversations every TEMPLATE is checked on: with and without a system prompt, single and multi-turn,
# always ending where Ollama renders: on a user turn, with the generation prompt.
CHECK_CONVERSATIONS = [
    [{"role": "user", "content": "What pressure does the pump reach?"}],
    [
        {"role": "system", "content": "You answer from the Velbrook manuals."},
        {"role": "user", "content": "What pressure does the pump reach?"},
    ],
    [
        {"role": "user", "content": "How do I descale it?"},
        {"role": "assistant", "content": "1. Empty the tank.\n2. Add descaler."},
        {"role": "user", "content": "And after that?"},
    ],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": 'List two "quoted" words, then a { brace } and <tags>.'},
    ],
    [{"role": "user", "content": "Ünïcödé — 35 °C, 9 bar, 日本語?"}],
]

FAMILIES = {
    # role header before the content, and what closes a turn.
    "chatml": {"pre": "<|im_start|>{role}\n", "post": "<|im_end|>\n", "marker": "<|im_start|>"},
    "llama3": {
        "pre": "<|start_header_id|>{role}<|end_header_id|>\n\n",
        "post": "<|eot_id|>",
        "marker": "<|start_header_id|>",
    },
}


@dataclass
class ChatTemplateParts:
    family: str
    system_pre: str  # text before a given system prompt (BOS text removed when the runtime adds BOS)
    system_post: str
    no_system: str  # what the template writes when there is no system prompt (a default one, or "")
    generation: str  # the generation prompt
    strip_bos: str  # BOS text the HF rendering starts with and the runtime adds by itself ("" if none)


def family_of(chat_template: str) -> str:
    for name, f in FAMILIES.items():
        if f["marker"] in chat_template:
            return name
    raise OrgtuneError(
        "the model's chat template is neither ChatML nor Llama 3; orgtune cannot write a "
        "verified Ollama TEMPLATE for it",
        fix="ship the GGUF alone (Ollama then uses the template embedded in it) or the merged folder",
    )


def _block(family: str, role: str, content: str) -> str:
    f = FAMILIES[family]
    return f["pre"].format(role=role) + content + f["post"]


def template_parts(
    render, chat_template: str, *, bos_text: str = "", runtime_adds_bos: bool = False
) -> ChatTemplateParts:
    """Read the pieces of a chat template off its own renderings. `render(messages, add_generation_prompt)`."""
    family = family_of(chat_template)
    user = _block(family, "user", _U)
    no_sys = render([{"role": "user", "content": _U}], False)
    with_sys = render([{"role": "system", "content": _S}, {"role": "user", "content": _U}], False)
    gen = render([{"role": "user", "content": _U}], True)
    multi = render(
        [{"role": "user", "content": _U}, {"role": "assistant", "content": _A}, {"role": "user", "content": _U2}], False
    )
    problems = []
    if not no_sys.endswith(user) or not with_sys.endswith(user):
        problems.append("user turns are not written as " + repr(user))
    if not gen.startswith(no_sys):
        problems.append("the generation prompt is not appended after the last turn")
    if not multi.endswith(_block(family, "assistant", _A) + _block(family, "user", _U2)):
        problems.append("assistant turns are not written like user turns")
    head = with_sys[: -len(user)]
    if head.count(_S) != 1:
        problems.append("the system prompt is not written exactly once")
    if problems:
        raise OrgtuneError(
            f"the chat template does not follow the {family} shape: " + "; ".join(problems),
            fix="ship the GGUF alone (Ollama then uses the template embedded in it)",
        )
    pre, post = head.split(_S)
    none = no_sys[: -len(user)]
    strip = bos_text if runtime_adds_bos and bos_text and pre.startswith(bos_text) and none.startswith(bos_text) else ""
    return ChatTemplateParts(
        family=family,
        system_pre=pre[len(strip) :],
        system_post=post,
        no_system=none[len(strip) :],
        generation=gen[len(no_sys) :],
        strip_bos=strip,
    )


def go_template(p: ChatTemplateParts) -> str:
    f = FAMILIES[p.family]
    pre_role, mid = f["pre"].split("{role}")
    no_system = "{{ else }}" + p.no_system if p.no_system else ""
    return (
        "{{- if .System }}"
        + p.system_pre
        + "{{ .System }}"
        + p.system_post
        + no_system
        + "{{ end }}"
        + '{{- range .Messages }}{{ if ne .Role "system" }}'
        + pre_role
        + "{{ .Role }}"
        + mid
        + "{{ .Content }}"
        + f["post"]
        + "{{ end }}{{ end }}"
        + p.generation
    )


def modelfile(
    *,
    source: str,
    template: str,
    stops: list[str],
    num_ctx: int,
    system: str | None = None,
    adapter: str | None = None,
    comment: str = "",
) -> str:
    if '"""' in template or (system and '"""' in system):
        raise OrgtuneError(
            'the TEMPLATE or SYSTEM text contains """, which a Modelfile cannot quote',
            fix="remove the triple quote from the system prompt",
        )
    lines = [f"# {line}" for line in comment.splitlines()] + [f"FROM {source}"]
    if adapter:
        lines.append(f"ADAPTER {adapter}")
    lines.append(f'TEMPLATE """{template}"""')
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in stops]
    lines += [f"PARAMETER {k} {v}" for k, v in SAMPLING.items()] + [f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"


def go_available() -> bool:
    return shutil.which("go") is not None


def go_render(template: str, conversations: list[list[dict]]) -> list[str]:
    """Execute an Ollama TEMPLATE with Go's text/template the way Ollama does, once per conversation."""
    if not go_available():
        raise OrgtuneError(
            "Go is not installed, so the Ollama TEMPLATE cannot be executed to verify it",
            fix="install Go (Debian/Ubuntu: apt-get install golang-go) and export again",
        )
    from orgtune.home import home

    cache = home() / "go-build"
    env = {**os.environ, "GOCACHE": os.environ.get("GOCACHE", str(cache)), "GO111MODULE": "off", "GOTOOLCHAIN": "local"}
    req = json.dumps({"template": template, "conversations": conversations})
    proc = subprocess.run(["go", "run", str(GO_RENDERER)], input=req, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise OrgtuneError(
            f"Go could not execute the TEMPLATE: {proc.stderr.strip()[-400:]}",
            fix="report this with the Modelfile; the TEMPLATE is not safe to ship",
        )
    return json.loads(proc.stdout)


def verify_template(template: str, render, *, strip_bos: str = "") -> dict:
    """Render CHECK_CONVERSATIONS through Go (the TEMPLATE) and Jinja (HF); return the comparison."""
    expected = []
    for c in CHECK_CONVERSATIONS:
        text = render(c, True)
        expected.append(text[len(strip_bos) :] if strip_bos and text.startswith(strip_bos) else text)
    got = go_render(template, CHECK_CONVERSATIONS)
    mismatches = [
        {"conversation": i, "jinja": e, "go": g} for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g
    ]
    return {"conversations": len(expected), "identical": len(expected) - len(mismatches), "mismatches": mismatches}
