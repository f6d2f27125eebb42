"""Training: LoRA/QLoRA SFT through TRL + PEFT with crash-safe checkpoints and adapter lineage."""
