"""Answering, one layer for every stage: the HF and llama.cpp backends side by side, one stop rule and
one generation-settings object. evaluate, export, serve, nightly and the preference stage answer through it.

    settings.py   GenerationSettings (frozen; a call passes its own) and transformers' generate() arguments
    stops.py      the stop rule: the chat template's end-of-turn token and EOS, as strings, HF ids, GGUF ids
    hf.py         HFBackend: a transformers model, with a PEFT adapter switched on or off per backend
    llama.py      llama.cpp: open a GGUF with a clear error, the token loop, LlamaCppBackend
"""
