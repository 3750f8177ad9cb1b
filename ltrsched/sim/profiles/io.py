"""Profile files: JSON with unit-bearing keys, validated on load; the built-in profiles ship as such files.

See PROFILES.md for the format. Every problem with a file raises :class:`ltrsched.errors.UserError`
naming the file and the key.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import stat
import threading
from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from ltrsched import strict_json
from ltrsched.errors import UserError
from ltrsched.inputs import PIPE, check_not_special, special_kind
from ltrsched.numbers import is_finite_number
from ltrsched.sim.kv_capacity import ModelShape, weight_bytes_per_gpu
from ltrsched.sim.profiles.model import MIN_STEP_S, StepTimeProfile
from ltrsched.workloads.utf8 import decode_utf8

FORMAT = "ltrsched-step-time-profile"
FORMAT_VERSION = 1
_PACKAGE = "ltrsched.sim.profiles"

#: Largest time a profile may give one term of a step [s] (a step of minutes is no GPU's), and per unit of
#: work [s per token, pair or sequence]; real values are milliseconds and nanoseconds.
MAX_STEP_TERM_S = 1e3
MAX_S_PER_UNIT = 1.0
#: top-level scalar key -> (accepted python types, rule: text / positive / non-negative, largest value or None)
_SCALARS: dict[str, tuple[type | tuple[type, ...], str, float | None]] = {
    "name": (str, "text", None),
    "description": (str, "text", None),
    "gpu": (str, "text", None),
    "model": (str, "text", None),
    "tensor_parallel": (int, "positive", 4096),
    "max_model_len": (int, "positive", 1 << 24),  # tokens
    "gpu_memory_bytes": (int, "positive", 1 << 50),  # 1 PiB
    "activation_reserve_bytes": (int, "non-negative", 1 << 50),
    "host_link_bytes_per_s": ((int, float), "positive", 1e15),
    "decode_attention_s_per_kv_token": ((int, float), "non-negative", MAX_S_PER_UNIT),
    "prefill_attention_s_per_pair": ((int, float), "non-negative", MAX_S_PER_UNIT),
    "overhead_s_per_step": ((int, float), "non-negative", MAX_STEP_TERM_S),
    "overhead_s_per_seq": ((int, float), "non-negative", MAX_S_PER_UNIT),
}
#: Slowest host link [bytes/s]: swapping one KV block (a few MB) must not take hours.
MIN_HOST_LINK_BYTES_PER_S = 1e6
#: Largest table x value [tokens or sequences].
MAX_TABLE_X = 1 << 24
#: table key -> (x column, y column)
_TABLES = {
    "non_attention": ("num_tokens", "non_attention_s"),
    "sampling": ("num_seqs", "sampling_s"),
}
_KNOWN = {"format", "format_version", "model_config", "provenance", *_SCALARS, *_TABLES}


# ---------------------------------------------------------------------------- dict <-> profile
def profile_to_dict(profile: StepTimeProfile) -> dict[str, Any]:
    """The JSON-ready dict of a profile (the file format, version 1)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": profile.name,
        "description": profile.description,
        "gpu": profile.gpu,
        "model": profile.model,
        "tensor_parallel": profile.tensor_parallel,
        "max_model_len": profile.max_model_len,
        "gpu_memory_bytes": profile.gpu_memory_bytes,
        "activation_reserve_bytes": profile.activation_reserve_bytes,
        "host_link_bytes_per_s": profile.host_link_bytes_per_s,
        "overhead_s_per_step": profile.overhead_s_per_step,
        "overhead_s_per_seq": profile.overhead_s_per_seq,
        "decode_attention_s_per_kv_token": profile.decode_attention_s_per_kv_token,
        "prefill_attention_s_per_pair": profile.prefill_attention_s_per_pair,
        "non_attention": {"num_tokens": _counts(profile.non_attention_num_tokens),
                          "non_attention_s": list(profile.non_attention_s)},
        "sampling": {"num_seqs": _counts(profile.sampling_num_seqs), "sampling_s": list(profile.sampling_s)},
        # (copies all the way down: a caller editing the dict's provenance.engine edited the built-in profile's,
        # cached for the process: its runs' block size, its cache keys)
        "model_config": copy.deepcopy(dict(profile.model_config)),
        "provenance": copy.deepcopy(dict(profile.provenance)),
    }


def _counts(values) -> list:
    """Table x values as ints where they are whole numbers (token and sequence counts)."""
    return [int(v) if float(v).is_integer() else v for v in values]


def dumps_profile(profile: StepTimeProfile) -> str:
    """The profile file's text: indented JSON with each table column on one line."""
    text = strict_json.dumps(profile_to_dict(profile), indent=1)
    # json puts one list item per line; fold lists of numbers back onto one line
    return re.sub(r"\[\n\s*([-0-9.e+,\s]*?)\n\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def _check_number(source: str, key: str, value: Any, types, rule: str, largest: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        kind = "an integer" if types is int else ("text" if types is str else "a number")
        raise UserError(f"{source}: key {key!r} must be {kind}, got {value!r}")
    if rule == "text":
        if not value.strip():
            raise UserError(f"{source}: key {key!r} must not be empty")
        return
    if not is_finite_number(value):
        raise UserError(f"{source}: key {key!r} must be finite, got "
                        + (f"an integer of {len(str(value))} digits" if isinstance(value, int) else repr(value)))
    if rule == "positive" and value <= 0:
        raise UserError(f"{source}: key {key!r} must be positive, got {value!r}")
    if rule == "non-negative" and value < 0:
        raise UserError(f"{source}: key {key!r} must be >= 0, got {value!r}")
    if largest is not None and value > largest:
        raise UserError(f"{source}: key {key!r} is {value!r}, more than the largest plausible value {largest:g}")


def _read_table(source: str, data: Mapping[str, Any], key: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    xname, yname = _TABLES[key]
    table = data[key]
    if not isinstance(table, Mapping):
        raise UserError(f"{source}: key {key!r} must be an object with {xname!r} and {yname!r} lists")
    cols = []
    for col in (xname, yname):
        full = f"{key}.{col}"
        if col not in table:
            raise UserError(f"{source}: key {full!r} is missing")
        values = table[col]
        if not isinstance(values, list) or not values:
            raise UserError(f"{source}: key {full!r} must be a non-empty list of numbers")
        for v in values:
            _check_number(source, full, v, (int, float), "non-negative",
                          MAX_TABLE_X if col == xname else MAX_STEP_TERM_S)
        cols.append(tuple(float(v) for v in values))
    extra = set(table) - {xname, yname}
    if extra:
        raise UserError(f"{source}: unknown key {key}.{sorted(extra)[0]!r}")
    xs, ys = cols
    if len(xs) != len(ys):
        raise UserError(f"{source}: keys '{key}.{xname}' and '{key}.{yname}' differ in length "
                        f"({len(xs)} vs {len(ys)})")
    if xs[0] < 1:
        raise UserError(f"{source}: key '{key}.{xname}' must start at >= 1, got {xs[0]}")
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise UserError(f"{source}: key '{key}.{xname}' must be strictly increasing")
    if any(b < a for a, b in zip(ys, ys[1:])):
        raise UserError(f"{source}: key '{key}.{yname}' must be non-decreasing (more work is never "
                        f"faster); fit noisy timings with ltrsched.sim.profiles.fit.isotonic")
    return xs, ys


def _check_engine_block_size(source: str, provenance: Mapping[str, Any]) -> None:
    """``provenance.engine.block_size`` [tokens], where given, is the default ``--block-size`` of runs on the profile
    (:func:`engine_block_size`): a positive integer of at most :data:`MAX_TABLE_X`, or null (not known). (A string or 0
    there was ignored: runs took 16-token blocks where the engine measured had 128.)"""
    engine = provenance.get("engine")
    if not isinstance(engine, Mapping) or engine.get("block_size") is None:
        return
    size = engine["block_size"]
    if type(size) is not int or not 0 < size <= MAX_TABLE_X:
        raise UserError(f"{source}: key 'provenance.engine.block_size' must be a positive integer of at most "
                        f"{MAX_TABLE_X} (the engine's tokens per KV block) or null, got {size!r}")


def profile_from_dict(data: Any, source: str = "profile") -> StepTimeProfile:
    """Validate a profile dict (the file format) and build the profile; problems raise UserError."""
    if not isinstance(data, Mapping):
        raise UserError(f"{source}: a profile must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise UserError(f"{source}: key 'format' must be {FORMAT!r}, got {data.get('format')!r}")
    if type(data.get("format_version")) is not int or data["format_version"] != FORMAT_VERSION:  # (not true, 1.0)
        raise UserError(f"{source}: key 'format_version' must be {FORMAT_VERSION}, "
                        f"got {data.get('format_version')!r}")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r}")
    for key in (*_SCALARS, *_TABLES, "model_config"):
        if key not in data:
            raise UserError(f"{source}: key {key!r} is missing")
    for key, (types, rule, largest) in _SCALARS.items():
        _check_number(source, key, data[key], types, rule, largest)
    if data["host_link_bytes_per_s"] < MIN_HOST_LINK_BYTES_PER_S:
        raise UserError(f"{source}: key 'host_link_bytes_per_s' is {data['host_link_bytes_per_s']!r}, less than the "
                        f"slowest plausible link {MIN_HOST_LINK_BYTES_PER_S:g} bytes/s")
    if data["activation_reserve_bytes"] >= data["gpu_memory_bytes"]:
        raise UserError(f"{source}: key 'activation_reserve_bytes' ({data['activation_reserve_bytes']}) must be less "
                        f"than 'gpu_memory_bytes' ({data['gpu_memory_bytes']})")
    non_attention = _read_table(source, data, "non_attention")
    sampling = _read_table(source, data, "sampling")
    # the lightest step (one token, one sequence) takes the tables' first values (they never decrease) plus the
    # overheads; attention adds >= 0
    shortest = non_attention[1][0] + sampling[1][0] + data["overhead_s_per_step"] + data["overhead_s_per_seq"]
    if not shortest >= MIN_STEP_S:
        raise UserError(
            f"{source}: the shortest step takes {shortest:.3g} s (non_attention.non_attention_s[0] + "
            f"sampling.sampling_s[0] + overhead_s_per_step + overhead_s_per_seq); a step must take at least "
            f"{MIN_STEP_S:g} s (are the step times all zero?)")
    shape = ModelShape.from_config(data["model_config"], source=f"{source}: key 'model_config'")
    try:
        shape.check_tp(data["tensor_parallel"])
    except UserError as exc:
        raise UserError(f"{source}: key 'tensor_parallel': {exc}") from None
    weights = weight_bytes_per_gpu(shape, data["tensor_parallel"])
    if weights + data["activation_reserve_bytes"] >= data["gpu_memory_bytes"]:  # (simulate said "profile NAME leaves
        # no GPU memory for one KV block", naming the name inside the file, which an edited copy keeps)
        raise UserError(f"{source}: keys 'gpu_memory_bytes' ({data['gpu_memory_bytes']}) and 'activation_reserve_bytes' "
                        f"({data['activation_reserve_bytes']}) leave no memory for a KV cache beside the weights of "
                        f"'model_config' ({weights} bytes per GPU at tensor_parallel {data['tensor_parallel']})")
    provenance = data.get("provenance", {})
    if not isinstance(provenance, Mapping):
        raise UserError(f"{source}: key 'provenance' must be an object")
    _check_engine_block_size(source, provenance)
    return StepTimeProfile(
        name=data["name"],
        description=data["description"],
        gpu=data["gpu"],
        model=data["model"],
        tensor_parallel=data["tensor_parallel"],
        max_model_len=data["max_model_len"],
        gpu_memory_bytes=data["gpu_memory_bytes"],
        activation_reserve_bytes=data["activation_reserve_bytes"],
        host_link_bytes_per_s=float(data["host_link_bytes_per_s"]),
        non_attention_num_tokens=non_attention[0],
        non_attention_s=non_attention[1],
        sampling_num_seqs=sampling[0],
        sampling_s=sampling[1],
        decode_attention_s_per_kv_token=float(data["decode_attention_s_per_kv_token"]),
        prefill_attention_s_per_pair=float(data["prefill_attention_s_per_pair"]),
        overhead_s_per_step=float(data["overhead_s_per_step"]),
        overhead_s_per_seq=float(data["overhead_s_per_seq"]),
        model_config=copy.deepcopy(dict(data["model_config"])),  # (not the caller's nested objects)
        provenance=copy.deepcopy(dict(provenance)),
    )


# ---------------------------------------------------------------------------- files
#: The largest profile file read [bytes] (the built-in ones hold about 12 KB; measured ones' tables, a few times that).
MAX_PROFILE_BYTES = 64 << 20


def read_profile_file(path: str | os.PathLike) -> StepTimeProfile:
    """Load and validate one profile JSON file."""
    path = Path(path)
    if special_kind(path) == PIPE:  # (opening a pipe waits for a writer: `-p fifo` hung; /dev/zero is read below)
        check_not_special(path, "profile file")
    try:
        with path.open("rb") as fh:  # (at most this much: `-p /dev/zero` read on until memory ran out)
            data = fh.read(MAX_PROFILE_BYTES + 1)
        if len(data) > MAX_PROFILE_BYTES:
            raise UserError(f"{path}: more than {MAX_PROFILE_BYTES >> 20} MiB, far more than a profile JSON file holds")
        # (a byte-order mark is dropped; UTF-16, a gzip file, binary bytes are each named: they were "'utf-8' codec
        # can't decode byte 0xff in position 0: invalid start byte")
        text = decode_utf8(data, path)
    except FileNotFoundError:
        raise UserError(f"profile file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"profile path is a directory, not a JSON file: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # (it said "[Errno 40] Too many levels of symbolic links: 'PATH'", the path twice)
            raise UserError(f"profile file {path} is a symbolic link that leads back to itself (a loop of links): "
                            "give the file it should name") from None
        raise UserError(f"cannot read profile file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a path no file can have (a NUL byte, from a JSON sweep file's "\u0000")
        raise UserError(f"cannot read profile file {str(path)!r}: {exc}") from None
    if not text.strip():  # (it said "not valid JSON (Expecting value at line 1)" of a file of 0 bytes)
        raise UserError(f"{path}: the file is empty{'' if not text else ' (blank: white space only)'}; a profile is "
                        "a JSON object, as `ltrsched profile` writes one (PROFILES.md)")
    try:
        data = json.loads(text, object_pairs_hook=strict_json.unique_keys)
    except strict_json.DuplicateKeyError as exc:  # (json kept the last value: an edited profile ran with either)
        raise UserError(f"{path}: {exc}; keep one") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:  # e.g. 100,000 "[": json recurses once per level
        raise UserError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer of over 4,300 digits (Python's limit on reading one from text)
        raise UserError(f"{path}: not valid JSON ({str(exc).split(';')[0]})") from None
    return profile_from_dict(data, source=str(path))


#: Profile files parsed in this process, by the file's identity ``(real path, size, mtime_ns, ctime_ns, inode,
#: device)``, as :mod:`ltrsched.fingerprint` keys its digests: one command's checks and runs each loaded the file
#: again (``simulate -p FILE`` parsed it 4 times, a 2-run sweep 8, a 2-run capacity search 9; a 60 MB profile takes
#: seconds a parse). A file rewritten since (ctime changes on every write) gets a new identity and is read again.
_PARSED: OrderedDict[tuple, StepTimeProfile] = OrderedDict()
#: The most parsed profile files kept (the least recently used goes first): a sweep's profiles, a few at a time.
MAX_PARSED_FILES = 16
_PARSED_LOCK = threading.Lock()


def _file_identity(path: Path) -> tuple | None:
    """``path``'s identity (:data:`_PARSED`), or None for what is not a regular file or cannot be stat'ed (read
    uncached: its error, or a device's bytes, are :func:`read_profile_file`'s)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _read_profile_file_once(path: Path) -> StepTimeProfile:
    """:func:`read_profile_file` of ``path``, parsed once per file version and process (:data:`_PARSED`); a file
    changed while it was read is read again. The profile is immutable, so its users share it, as they share a
    built-in's."""
    ident = _file_identity(path)
    while True:
        if ident is None:
            return read_profile_file(path)
        with _PARSED_LOCK:
            profile = _PARSED.get(ident)
            if profile is not None:
                _PARSED.move_to_end(ident)
                return profile
        profile = read_profile_file(path)
        after = _file_identity(path)
        if after == ident:
            break
        ident = after  # (written meanwhile: read the new version)
    with _PARSED_LOCK:
        _PARSED[ident] = profile
        while len(_PARSED) > MAX_PARSED_FILES:
            _PARSED.popitem(last=False)
    return profile


def save_profile(profile: StepTimeProfile, path: str | os.PathLike) -> Path:
    """Write ``profile`` as a profile JSON file, atomically and durably; :class:`UserError` on failure, and, before
    anything is written, for a profile whose file would not load (:func:`profile_from_dict`'s checks of the text
    written): ``ltrsched profile --emulate`` on a profile at a key's limit fitted a decode attention of
    1.0000000000000164 s per KV token and wrote a file that ``simulate -p`` then refused."""
    from ltrsched import atomic

    text = dumps_profile(profile)
    profile_from_dict(json.loads(text), source=f"profile {profile.name!r} (not written to {str(path)!r})")
    return atomic.write_text(path, text)


# ---------------------------------------------------------------------------- built-ins
@lru_cache(maxsize=1)
def _builtin_files() -> dict[str, Any]:
    root = resources.files(_PACKAGE)
    return {entry.name[: -len(".json")]: entry for entry in root.iterdir()
            if entry.name.endswith(".json") and entry.is_file()}


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> StepTimeProfile:
    entry = _builtin_files()[name]
    data = json.loads(entry.read_text(encoding="utf-8"))
    return profile_from_dict(data, source=f"built-in profile {name!r}")


def builtin_profiles() -> dict[str, str]:
    """Built-in profile name -> one-line description, sorted by name."""
    return {name: _load_builtin(name).description for name in sorted(_builtin_files())}


def profile_file(name_or_path: str | os.PathLike) -> Path | None:
    """The file :func:`load_profile` reads for ``name_or_path``, or None for a built-in profile name."""
    text = os.fspath(name_or_path)
    return None if text in _builtin_files() else Path(text)


def load_profile(name_or_path: str | os.PathLike | StepTimeProfile) -> StepTimeProfile:
    """A built-in profile by name, or a profile JSON file by path (parsed once per version of the file and process:
    one that changes is read again); anything else raises UserError."""
    if isinstance(name_or_path, StepTimeProfile):
        return name_or_path
    text = os.fspath(name_or_path)
    builtins = _builtin_files()
    if text in builtins:
        return _load_builtin(text)
    if not text.strip():  # (Path("") is the current directory: "profile path is a directory, not a JSON file: .")
        raise UserError(f"no profile given (the name {text!r} is empty): give a built-in ({', '.join(sorted(builtins))})"
                        " or a profile JSON file")
    path = Path(text)
    if path.exists() or text.endswith(".json") or os.sep in text or (os.altsep and os.altsep in text):
        return _read_profile_file_once(path)
    raise UserError(f"unknown profile {text!r}; built-in profiles: {', '.join(sorted(builtins))} "
                    f"(or give a path to a profile JSON file)")


def engine_block_size(name_or_path: str | os.PathLike | StepTimeProfile) -> int | None:
    """The KV block size [tokens] the engine of a measured profile used (``ltrsched profile`` records it in
    the profile's provenance), else None (the A100/H100 profiles derived from operator timings)."""
    engine = load_profile(name_or_path).provenance.get("engine")
    size = engine.get("block_size") if isinstance(engine, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
