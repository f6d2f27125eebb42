"""Nightly incremental training that never ships a worse model: delta data, replay, eval gate, promotion."""
