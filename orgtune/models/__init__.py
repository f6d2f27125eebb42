"""Model presets, loading (preset, local folder, hub id, the embedded default) and size planning."""

# The projections of a transformer block that LoRA adapts by default (attention and MLP): every preset names these.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
