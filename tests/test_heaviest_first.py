"""The order in which ``-n 2 --dist loadfile`` hands test files to its workers (tests/heaviest_first.py): the
heaviest file left first, driven here through pytest-xdist's own scheduler with stand-in workers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import heaviest_first

pytest.importorskip("xdist")


class Worker:
    """A stand-in for xdist's WorkerController: records the test indexes it is sent."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[list[int]] = []

    def send_runtest_some(self, indexes):
        self.sent.append(list(indexes))

    def shutdown(self):
        self.shutting_down = True


def _config(dist: str):
    return SimpleNamespace(getvalue=lambda name: {"dist": dist, "tx": ["2*popen"]}[name],
                           option=SimpleNamespace(loadscopereorder=True, maxschedchunk=None))


def _handed_out(collection: list[str], weights: dict[str, float], monkeypatch) -> list[list[str]]:
    """The files each of two workers is sent when the scheduler starts, in the order sent."""
    monkeypatch.setattr(heaviest_first, "FILE_SECONDS", weights)
    scheduler = heaviest_first.make_scheduler(_config("loadfile"), None)
    workers = [Worker("gw0"), Worker("gw1")]
    for w in workers:
        scheduler.add_node(w)
    for w in workers:
        scheduler.add_node_collection(w, collection)
    scheduler.schedule()
    return [[collection[batch[0]].split("::")[0] for batch in w.sent] for w in workers]


def test_the_heaviest_files_go_out_first_whatever_their_test_counts(monkeypatch):
    """xdist alone hands out the files with the most tests first (many.py, few.py); the heaviest files (one and
    two tests) go first instead, the unlisted ones after them in xdist's order."""
    collection = ([f"tests/many.py::t{i}" for i in range(5)] + ["tests/heavy.py::t0"]
                  + [f"tests/light.py::t{i}" for i in range(3)] + [f"tests/heavier.py::t{i}" for i in range(2)]
                  + [f"tests/few.py::t{i}" for i in range(4)])
    got = _handed_out(collection, {"heavy.py": 100.0, "heavier.py": 300.0}, monkeypatch)
    assert got == [["tests/heavier.py", "tests/many.py"], ["tests/heavy.py", "tests/few.py"]]
    plain = _handed_out(collection, {}, monkeypatch)  # no weights: xdist's own order (most tests first)
    assert plain == [["tests/many.py"], ["tests/few.py"]]  # (a worker holding over 2 tests gets no second file)


def test_other_dist_modes_keep_xdists_scheduler():
    assert heaviest_first.make_scheduler(_config("load"), None) is None


def test_every_weighed_file_exists():
    """A renamed or split file would lose its weight without a word."""
    here = Path(__file__).parent
    assert heaviest_first.FILE_SECONDS and all((here / name).is_file() for name in heaviest_first.FILE_SECONDS)
