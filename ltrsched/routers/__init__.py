"""Routers: which replica of a cluster serves each arriving request (pure Python + numpy; no simulator
imports). A router is its own small interface beside the policies, with the same registry and plugins.

Public API: :class:`Router`, :class:`ReplicaView`, :class:`ReplicaSnapshot`, :func:`make_router`,
:func:`register`, :func:`available`.
"""

from ltrsched.routers.base import ReplicaSnapshot, ReplicaView, Router
from ltrsched.routers.registry import available, make_router, register

__all__ = ["ReplicaSnapshot", "ReplicaView", "Router", "available", "make_router", "register"]
