"""Attention modules: contextual attention and the variants the papers build on it."""
