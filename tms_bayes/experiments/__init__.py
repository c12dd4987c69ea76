"""Experiments: one module per workflow, each running the inference layer and analysing its output
with the analysis layer (imports point from here to both, never back)."""
