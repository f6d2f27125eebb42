"""Model presets, loading (preset, local folder, hub id, the embedded default) and size planning."""
