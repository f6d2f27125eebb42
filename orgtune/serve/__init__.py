"""Serving: an OpenAI-compatible API over one base model and many adapters (HF), or a GGUF (llama.cpp)."""
