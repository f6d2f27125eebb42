"""Preference pairs for DPO (`orgtune data prefs`): a stage after SFT that asks the tuned model, above evaluate."""
