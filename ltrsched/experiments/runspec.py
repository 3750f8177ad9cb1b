"""One simulation run of an experiment, and its stable content hash (the run-cache key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ltrsched.errors import UserError

#: Fields that label a run for tables but do not change its result (left out of the hash).
LABEL_FIELDS = ("experiment", "setting", "label", "note")
#: Bump when the meaning of a run changes (metrics added to summaries, scoring semantics), so that
#: old cached results are not reused. 2: keys cover the content of input files and plugin code; 3: max_token_gap
#: is null for requests with fewer than two tokens (was 0.0); 4: simulated scores' noise, the random router and a
#: cluster's same-instant arrivals follow request ids, not rows (a file whose rows are not in id order changed).
CACHE_VERSION = 4
#: Fields that hold a number of seconds or a rate: an integer there means the float of the same value.
_FLOAT_FIELDS = ("rate", "duration", "cv", "stop_time")
#: ``SimConfig.block_size``'s default [tokens] (kept here so that hashing a spec imports no simulator).
DEFAULT_BLOCK_SIZE = 16


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one simulated run.

    Attributes:
        experiment: experiment name (``table1``, ``fig3``, ... or ``sweep``); a label.
        setting: row/panel label, e.g. ``"8B ShareGPT"``; a label.
        label: policy label in tables and figures, e.g. ``"LTR"``; a label.
        note: free text shown in tables (e.g. which scores stand in for a predictor); a label.
        workload: built-in workload name or a file path.
        num_requests: requests drawn from the workload (seeded); None: all.
        arrival: ``burst``, ``poisson``, ``gamma`` or ``replay``.
        rate: mean arrival rate [req/s] (poisson/gamma/replay).
        duration: keep only requests arriving in the first ``duration`` seconds [s].
        cv: coefficient of variation of gamma inter-arrival times.
        policy: policy spec string, e.g. ``ltr:starve=200,quantum=10``.
        scoring: how predictor columns are attached before simulation (see ``scoring.py``).
        profile: step-time profile name or file.
        seed: seed of sampling, arrivals and scoring noise.
        max_num_batched_tokens: token budget per step [tokens].
        max_num_seqs: sequence cap per step.
        preemption: ``swap`` or ``recompute``.
        chunked_prefill: split prompts across steps.
        record_steps: also write ``steps.parquet`` (needed for prefill-time accounting).
        stop_time: end the simulation at this time [s] (synthetic data generation horizons).
        replicas: identical replicas serving the workload behind ``router`` (1: the lone simulator).
        router: router spec (``ltrsched routers``) when ``replicas`` > 1; None: a lone replica.
        block_size: tokens per KV block [tokens]; None: the block size the profile's engine used if the
            profile was measured (``ltrsched profile``: 128 for the built-in ``cpu-*``), else 16.
        max_model_len: longest prompt + output a request may have [tokens]; None: the profile's.
    """

    experiment: str
    setting: str
    label: str
    workload: str
    policy: str
    profile: str
    num_requests: int | None = None
    arrival: str = "burst"
    rate: float | None = None
    duration: float | None = None
    cv: float = 1.0
    scoring: str = "none"
    seed: int = 0
    max_num_batched_tokens: int = 768
    max_num_seqs: int = 256
    preemption: str = "swap"
    chunked_prefill: bool = True
    record_steps: bool = False
    stop_time: float | None = None
    note: str = ""
    replicas: int = 1
    router: str | None = None
    block_size: int | None = None
    max_model_len: int | None = None

    def key(self) -> dict[str, Any]:
        """The result-determining fields (what the hash covers): every field but the labels, plus what
        the run reads (:meth:`inputs`), this package's version and :data:`CACHE_VERSION`. A workload or
        profile file counts by its content, not by its path. A lone replica's key has no cluster fields, so
        runs cached before clusters existed keep their hashes."""
        # (the fields by name, not asdict's deep copy: every field is a scalar, and the copy was most of a hash's cost)
        d = {k: getattr(self, k) for k in _KEY_FIELDS}
        for k in _FLOAT_FIELDS:  # rate 4 and rate 4.0 are one run (JSON would write 4 and 4.0)
            if type(d[k]) is int:
                d[k] = float(d[k])
        if self.replicas == 1 and self.router is None:
            del d["replicas"], d["router"]
        # the block size the run uses, and only where it is not the simulator's default: runs cached before
        # the field existed keep their hashes, and None or the value it stands for hash alike
        del d["block_size"]
        block_size = self.resolved_block_size()
        if block_size != DEFAULT_BLOCK_SIZE:
            d["block_size"] = block_size
        # only where set to other than the profile's: runs cached before the field existed keep their hashes, and
        # the profile's value given explicitly is the same simulation as None (one run, one key)
        if self.max_model_len is None or self.max_model_len == self.profile_max_model_len():
            del d["max_model_len"]
        d["cache_version"] = CACHE_VERSION
        if self.scoring.startswith("trained-class"):  # its summary's accuracy counts the classifier's own classes:
            d["class_accuracy"] = "own-classes"       # runs cached before, at accuracy 0.0, are not reused
        d["inputs"] = inputs = self.inputs()
        # a file is its bytes (in inputs) and, for a workload, its format, not the path it was named by: the
        # same file found from another directory (a sweep file's relative paths, "./w.csv") is the same run
        if "sha256" in inputs["workload"]:
            d["workload"] = "file" + Path(self.workload).suffix.lower()
        if "sha256" in inputs["profile"]:
            d["profile"] = "file"
        return d

    def resolved_block_size(self) -> int:
        """The KV block size the run simulates [tokens]: ``block_size``, or the profile's engine's, or 16."""
        if self.block_size is not None:
            return self.block_size
        return _profile_facts(self.profile)[0] or DEFAULT_BLOCK_SIZE

    def profile_max_model_len(self) -> int:
        """The profile's ``max_model_len`` [tokens]: what the run simulates where ``max_model_len`` is None."""
        return _profile_facts(self.profile)[1]

    def inputs(self) -> dict[str, Any]:
        """Content fingerprints of what the run reads besides its fields: the workload file's and the
        profile file's bytes (SHA-256; built-in names stand for themselves), a plugin policy's code, a
        trained predictor's cache key, a plugin router's code, and this package's version. Files are hashed once per version and
        process (:mod:`ltrsched.fingerprint`)."""
        from ltrsched import __version__
        from ltrsched.experiments.scoring import scoring_fingerprint
        from ltrsched.fingerprint import file_digest
        from ltrsched.policies.registry import policy_source
        from ltrsched.routers.registry import router_source
        from ltrsched.sim.profiles.io import load_profile, profile_file
        from ltrsched.workloads.loaders import workload_fingerprint

        profile = profile_file(self.profile)
        if profile is not None and not profile.is_file():
            load_profile(self.profile)  # raises the loader's one-line error
        return {
            "ltrsched": __version__,
            "workload": workload_fingerprint(self.workload),
            "profile": {"sha256": file_digest(profile)} if profile is not None else {"builtin": self.profile},
            "policy": policy_source(self.policy),
            "scoring": scoring_fingerprint(self.scoring),
            **({"router": router_source(self.router)} if self.router is not None else {}),
        }

    def run_hash(self) -> str:
        """Stable 16-hex-digit hash of :meth:`key`: the same spec over the same input bytes gives the same
        hash in any process; an edited workload, profile or plugin file gives a new one."""
        text = json.dumps(self.key(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"unknown run field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise UserError(f"bad run specification: {exc}") from None


#: :class:`RunSpec`'s fields a run's key starts from (all but :data:`LABEL_FIELDS`), in their declared order.
_KEY_FIELDS = tuple(f.name for f in fields(RunSpec) if f.name not in LABEL_FIELDS)


def _profile_facts(profile: Any) -> tuple[int | None, int]:
    """``profile``'s (engine block size or None, max_model_len [tokens]): a run's hash, its checks and its config each
    ask. A profile file is parsed once per version and process (:func:`ltrsched.sim.profiles.load_profile`: one
    changed since is read again). Errors are load_profile's."""
    from ltrsched.sim.profiles import engine_block_size, load_profile

    loaded = load_profile(profile)
    return engine_block_size(loaded), int(loaded.max_model_len)
