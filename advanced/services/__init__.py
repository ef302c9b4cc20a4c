"""Writes and multi-step operations of the advanced app (experiments, knowledge base, briefings)."""
