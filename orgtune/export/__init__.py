"""Export: merge, GGUF conversion and quantization, verification, Ollama Modelfile."""
