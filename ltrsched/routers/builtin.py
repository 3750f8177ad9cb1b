"""Imports every built-in router module so that each registers itself."""

from ltrsched.routers import load, predicted, simple  # noqa: F401
