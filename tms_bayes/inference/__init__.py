"""Running models and keeping their results: run storage (atomic, resumable) now; samplers,
sweeps, λ̂ estimation and SGD dynamics build on it."""
