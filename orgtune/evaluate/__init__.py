"""Evaluation: answer probes with base and tuned (and exported) models, score strictly, report."""
