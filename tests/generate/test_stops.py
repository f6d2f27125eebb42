"""The stop rule has one definition, and everything that generates or ships agrees on it: HF generation,
llama.cpp generation (with the HF tokenizer, and from the GGUF alone as `serve --gguf` runs it), both serve
engines and the Modelfile's `PARAMETER stop` lines give the same token ids, for SmolLM2's tokenizer (ChatML,
EOS = end of turn) and a Llama 3 one (end of turn <|eot_id|> apart from EOS <|end_of_text|>)."""

from __future__ import annotations

import json
import re

import pytest

from orgtune.export import gguf as G
from orgtune.export import ollama as O
from orgtune.generate.hf import HFBackend
from orgtune.generate.llama import LlamaCppBackend
from orgtune.generate.stops import stop_ids, stop_tokens
from orgtune.serve.engine import HFEngine, LlamaCppEngine
from tests.conftest import ROOT

LLAMA3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def _llama3_folder(tiny_model_dir, out):
    """The tiny model with a Llama 3 shaped tokenizer: Llama 3's special tokens and Llama 3.2's template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_special_tokens({"bos_token": LLAMA3[0], "eos_token": LLAMA3[1], "additional_special_tokens": LLAMA3[2:]})
    tok.chat_template = (ROOT / "tests" / "fixtures" / "chat_templates" / "llama-3.2-instruct.jinja").read_text()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.resize_token_embeddings(len(tok))
    model.config.bos_token_id, model.config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("family", ["smollm2", "llama3"])
def test_hf_llama_cpp_serve_and_the_modelfile_stop_on_the_same_ids(tmp_path, tiny_model_dir, family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model_dir if family == "smollm2" else _llama3_folder(tiny_model_dir, tmp_path / "llama3")
    tok = AutoTokenizer.from_pretrained(folder)
    words = {"smollm2": ["<|im_end|>"], "llama3": ["<|eot_id|>", "<|end_of_text|>"]}[family]
    assert stop_tokens(tok) == words
    ids = stop_ids(tok)
    assert ids == sorted(tok.convert_tokens_to_ids(w) for w in words)

    gguf = G.convert(folder, tmp_path / "model.gguf", "f16", log=lambda m: None)
    engines = [
        HFEngine(str(folder), device="cpu", log=lambda m: None),
        LlamaCppEngine(gguf),
        LlamaCppEngine(gguf, tokenizer_from=str(folder)),
    ]
    llama = LlamaCppBackend(gguf, tok)
    try:
        found = {
            "HF backend": HFBackend(AutoModelForCausalLM.from_pretrained(folder), tok, name="t").stop_ids,
            "llama.cpp backend": llama.stop_ids,
            "serve (HF)": engines[0].stop_ids,
            "serve --gguf": engines[1].stop_ids,
            "serve --gguf --tokenizer": engines[2].stop_ids,
        }
    finally:
        llama.close()
        for e in engines:
            e.stop()
    modelfile = O.modelfile(source="./model.gguf", template="{{ .Prompt }}", stops=stop_tokens(tok), num_ctx=2048)
    listed = [json.loads(s) for s in re.findall(r"^PARAMETER stop (\".*\")$", modelfile, re.M)]
    found["Modelfile"] = sorted(tok.convert_tokens_to_ids(s) for s in listed)
    assert all(v == ids for v in found.values()), found
