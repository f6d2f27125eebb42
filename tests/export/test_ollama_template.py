"""The Ollama TEMPLATE renders byte-for-byte like the HF chat template, executed by Go's text/template.

Every chat family the presets use is covered: ChatML (SmolLM2's real template from the embedded model,
Qwen2.5's) and Llama 3 (Llama-3.2-Instruct's). The upstream Qwen2.5 and Llama 3.2 templates are test data
in tests/fixtures/chat_templates (they come with those models' tokenizers, which cannot be downloaded here).
"""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from orgtune.export import ollama as O
from orgtune.generate.stops import stop_tokens
from orgtune.models.presets import all_presets
from orgtune.models.template import render
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"


def _tokenizer(embedded_dir, family: str):
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    if family == "qwen2.5":
        tok.chat_template = (FIXTURES / "qwen2.5-instruct.jinja").read_text()
    elif family == "llama3":
        tok.add_special_tokens(
            {
                "bos_token": "<|begin_of_text|>",
                "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            }
        )
        tok.chat_template = (FIXTURES / "llama-3.2-instruct.jinja").read_text()
    return tok


def _render(tok):
    return lambda messages, gen: render(tok, messages, add_generation_prompt=gen)


@pytest.mark.parametrize("family,runtime_bos", [("smollm2", False), ("qwen2.5", False), ("llama3", True)])
def test_template_renders_like_the_chat_template(embedded_dir, family, runtime_bos):
    tok = _tokenizer(embedded_dir, family)
    parts = O.template_parts(
        _render(tok), tok.chat_template, bos_text=tok.bos_token or "", runtime_adds_bos=runtime_bos
    )
    template = O.go_template(parts)
    check = O.verify_template(template, _render(tok), strip_bos=parts.strip_bos)
    assert check["mismatches"] == [] and check["identical"] == len(O.CHECK_CONVERSATIONS) == 5
    # The checked conversations cover what the issue lists: with/without system, multi-turn, generation prompt.
    convs = O.CHECK_CONVERSATIONS
    assert any(c[0]["role"] == "system" for c in convs) and any(c[0]["role"] != "system" for c in convs)
    assert any(sum(m["role"] == "user" for m in c) > 1 for c in convs)
    if family == "llama3":
        assert parts.strip_bos == "<|begin_of_text|>" and "<|begin_of_text|>" not in template
        assert "Today Date: 26 Jul 2024" in template  # pinned, as orgtune renders it for training


def test_every_preset_chat_family_is_covered():
    families = {p.chat_family for p in all_presets().values()}
    assert families <= {"chatml", "llama3"}, families


def test_a_wrong_template_is_caught(embedded_dir):
    tok = _tokenizer(embedded_dir, "smollm2")
    good = O.go_template(O.template_parts(_render(tok), tok.chat_template))
    for broken in (
        good.replace("<|im_end|>\n{{ end }}{{ end }}", "<|im_end|>{{ end }}{{ end }}"),  # lost newline
        good.replace("{{ else }}", "{{ else }}\n"),  # stray newline
        good.replace("You are a helpful", "You are a helpfull"),
    ):  # default system
        assert broken != good
        assert O.verify_template(broken, _render(tok))["mismatches"], broken


def test_go_executes_like_ollama_collating_system_messages():
    out = O.go_render(
        "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}",
        [
            [
                {"role": "system", "content": "a"},
                {"role": "system", "content": "b"},
                {"role": "user", "content": '<q> & "x"'},
            ]
        ],
    )
    assert out == ['a\n\nb|system:a\n\nb;user:<q> & "x";']


def test_modelfile_lists_every_stop_and_the_design_note_sampling(embedded_dir):
    tok = _tokenizer(embedded_dir, "llama3")
    tok.eos_token = "<|eot_id|>"
    text = O.modelfile(
        source="./model-q4_k_m.gguf",
        template="T",
        stops=["<|eot_id|>", "<|end_of_text|>"],
        num_ctx=4096,
        system="Answer from the manuals.",
    )
    lines = text.splitlines()
    assert 'PARAMETER stop "<|eot_id|>"' in lines and 'PARAMETER stop "<|end_of_text|>"' in lines
    for k, v in {
        "temperature": "0.0",
        "top_p": "0.95",
        "top_k": "40",
        "repeat_penalty": "1.1",
        "num_ctx": "4096",
    }.items():
        assert f"PARAMETER {k} {v}" in lines
    assert 'SYSTEM """Answer from the manuals."""' in lines and lines[0] == "FROM ./model-q4_k_m.gguf"
    assert stop_tokens(tok)[0] == "<|eot_id|>"
    with pytest.raises(Exception, match='"""'):
        O.modelfile(source="x", template="T", stops=[], num_ctx=1, system='say """hi"""')
