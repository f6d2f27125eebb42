"""The stop rule, defined once: generation ends at the chat template's end-of-turn token (the special token
it writes right after an assistant's content) or at the tokenizer's EOS. HF generation, llama.cpp
generation, `orgtune serve` and the Ollama Modelfile's `PARAMETER stop` lines all take it from here."""

from __future__ import annotations

from orgtune.data.tokenize import end_of_turn


def stop_tokens(tok) -> list[str]:
    """The stop tokens as text, end-of-turn first (a Modelfile lists these)."""
    out: list[str] = []
    for t in (end_of_turn(tok), tok.eos_token):
        if t and t not in out:
            out.append(t)
    return out


def stop_ids(tok) -> list[int]:
    """The stop tokens as the HF tokenizer's ids."""
    ids = {tok.convert_tokens_to_ids(t) for t in stop_tokens(tok)}
    return sorted(i for i in ids if i is not None and i != tok.unk_token_id)


def gguf_stop_ids(llm, tok=None, render=None) -> list[int]:
    """The stop tokens as a llama.cpp model's ids. With the HF tokenizer: its stop tokens, each looked up in
    the GGUF's vocabulary. Without one: the GGUF's EOS and the end-of-turn token found the same way as for
    HF, in the GGUF's own chat template (`render(messages)` renders it; the first token written after the
    assistant's content, if it is a control token)."""
    ids = {llm.token_eos()}
    if tok is not None:
        for t in stop_tokens(tok):
            found = llm.tokenize(t.encode(), add_bos=False, special=True)
            if len(found) == 1:
                ids.add(found[0])
        return sorted(i for i in ids if i >= 0)
    if render is not None:
        probe = "orgtune-probe"
        text = render([{"role": "user", "content": "q"}, {"role": "assistant", "content": probe}])
        after = text[text.rindex(probe) + len(probe) :] if probe in text else ""
        first = llm.tokenize(after.encode(), add_bos=False, special=True)[:1]
        # a control token detokenizes to nothing unless special tokens are asked for
        if first and not llm.detokenize(first, special=False) and llm.detokenize(first, special=True):
            ids.add(first[0])
    return sorted(i for i in ids if i >= 0)
