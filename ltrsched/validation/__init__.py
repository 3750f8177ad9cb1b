"""Simulator-vs-engine validation (issue 6): not built yet."""
