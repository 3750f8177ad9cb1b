"""The router interface: which replica of a cluster serves an arriving request.

A router is pure Python (+ numpy), like a policy: it never imports the simulator. The host (the cluster
simulator, ``ltrsched.sim.cluster``) calls :meth:`Router.route` once per request, at its arrival time, with
a :class:`ReplicaView` of every replica's state at that instant, and queues the request on the replica
it returns. The replica's own policy then schedules it like any other request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ltrsched.policies.base import init_parameter_names


class ReplicaView:
    """Read-only state of one replica at the instant a request arrives (what a router may read).

    The host implements it (counts are read when asked, so a router pays only for what it reads). A
    replica in the middle of a step shows the state the step started from, with the step's KV allocation;
    requests routed to it earlier in the same instant count as outstanding.

    Attributes:
        index: the replica's position in the cluster (0..N-1).
        num_gpu_blocks: KV-cache capacity [blocks].
        max_model_len: the longest prompt + output a request may have on the replica [tokens] (the run's context).
    """

    index: int
    num_gpu_blocks: int
    max_model_len: int

    @property
    def outstanding_requests(self) -> int:
        """Requests routed here and not finished (queued, running, paused or swapped out)."""
        raise NotImplementedError

    @property
    def kv_blocks_in_use(self) -> int:
        """KV blocks held on the GPU [blocks]."""
        raise NotImplementedError

    @property
    def requests(self) -> np.ndarray:
        """Positions of the outstanding requests in the columns :meth:`Router.prepare` received."""
        raise NotImplementedError

    @property
    def generated_tokens(self) -> np.ndarray:
        """Output tokens each of :attr:`requests` has produced so far [tokens] (aligned with it)."""
        raise NotImplementedError

    @property
    def context_tokens(self) -> int:
        """Prompt + generated tokens of the outstanding requests [tokens]: the KV they hold or will need."""
        raise NotImplementedError

    @property
    def kv_utilization(self) -> float:
        """Fraction of the KV cache in use."""
        return self.kv_blocks_in_use / self.num_gpu_blocks


@dataclass
class ReplicaSnapshot(ReplicaView):
    """A :class:`ReplicaView` holding fixed values (tests, or hosts that copy the state)."""

    index: int = 0
    num_gpu_blocks: int = 1
    max_model_len: int | None = None  # (None: not known to the host)
    outstanding: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    generated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prompt_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    blocks_in_use: int = 0

    def __post_init__(self) -> None:
        """The columns as int64 arrays (a list was an AttributeError from :attr:`context_tokens`), ``generated`` and
        ``prompt_tokens`` zeros where left out; one-line :class:`ValueError` naming the field for a KV capacity below
        1 block (a ZeroDivisionError from :attr:`kv_utilization`) or a column not aligned with ``outstanding`` (a
        router reading ``generated_tokens`` beside ``requests`` read another request's count, or an IndexError)."""
        if isinstance(self.num_gpu_blocks, bool) or not isinstance(self.num_gpu_blocks, (int, np.integer)) \
                or self.num_gpu_blocks < 1:
            raise ValueError(f"num_gpu_blocks must be a whole number of blocks >= 1, got {self.num_gpu_blocks!r}")
        for name in ("outstanding", "generated", "prompt_tokens"):
            values = np.asarray(getattr(self, name))
            if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
                raise ValueError(f"{name} must be a list or 1-d array of whole numbers, got {getattr(self, name)!r}")
            setattr(self, name, values.astype(np.int64, copy=False))
        for name in ("generated", "prompt_tokens"):
            values = getattr(self, name)
            if len(values) == 0:  # (left out: none generated, no prompt tokens)
                setattr(self, name, np.zeros(len(self.outstanding), dtype=np.int64))
            elif len(values) != len(self.outstanding):
                raise ValueError(f"{name} must have one value per outstanding request ({len(self.outstanding)}), "
                                 f"got {len(values)}")

    @property
    def outstanding_requests(self) -> int:
        return len(self.outstanding)

    @property
    def kv_blocks_in_use(self) -> int:
        return self.blocks_in_use

    @property
    def requests(self) -> np.ndarray:
        return self.outstanding

    @property
    def generated_tokens(self) -> np.ndarray:
        return self.generated

    @property
    def context_tokens(self) -> int:
        return int(self.prompt_tokens.sum() + self.generated.sum())


def first_idle(replicas: Sequence[ReplicaView]) -> int | None:
    """The lowest index of a replica with no outstanding request, None if every replica has one.

    Where there is one it is the answer of every built-in router that reads the state (``least-kv:by=tokens``,
    ``rank``, ``least-work``): it has no tokens, no request ranked ahead and no work, the least each measure can be, and
    ties go to the lowest index. Found from the counts alone, without reading any replica's requests (with 1,000
    replicas each arrival read every replica's)."""
    idle = [r.index for r in replicas if r.outstanding_requests == 0]
    return min(idle) if idle else None


class Router:
    """Base class of routers.

    Subclasses implement :meth:`route`; constructor keyword arguments are the spec's parameters (stored
    as attributes of the same name), as for policies.

    Class attributes:
        name: registry name (spec strings are ``name`` or ``name:key=value,...``).
        needs: workload columns that must hold real values, e.g. ``("score",)`` (checked before a run).
        reads_state: False for a router that never reads the replicas' state (only their number and
            indices): the host may then route every request, in arrival order, before the run starts, and
            the replicas run without pausing at each arrival (faster). Reading the state anyway is an error.
    """

    name: ClassVar[str] = "router"
    needs: ClassVar[tuple[str, ...]] = ()
    reads_state: ClassVar[bool] = True

    def prepare(self, requests: Mapping[str, np.ndarray], num_replicas: int) -> None:
        """Called once before a run with the whole workload (the columns a policy's ``prepare`` gets:
        ``request_id``, ``arrival_time``, ``prompt_tokens``, ``output_tokens``, ``score``,
        ``po_estimate``, ``predicted_length``; read-only: copy one to change it) and the number of replicas.
        Must reset any state."""

    def route(self, request: int, now: float, replicas: Sequence[ReplicaView]) -> int:
        """The replica (0..N-1) that serves request ``request`` (its position in the prepared columns),
        arriving at ``now`` [s]."""
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """Constructor parameters and their current values (read once per class: ``Policy.parameters``'s rule)."""
        return {n: getattr(self, n) for n in init_parameter_names(type(self)) if hasattr(self, n)}

    def describe(self) -> dict[str, Any]:
        return {"router": self.name, **self.parameters()}

    def spec(self) -> str:
        """A spec string that recreates this router."""
        params = {k: v for k, v in self.parameters().items() if v is not None}
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
