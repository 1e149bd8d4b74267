"""Launch a ``strategy=multiworker`` cell on this machine: ``workers`` processes on loopback.

The orchestrator starts one worker process per cell as always; for a multiworker
cell that process becomes the launcher (no TensorFlow here). It picks free
loopback ports, starts ``workers`` copies of ``python -m harness.worker`` with
their own ``TF_CONFIG`` (task index 0 is the chief), waits for all of them and
writes the cell's result: the chief's timed steps, and every worker's replica
weight digests (a cell whose replicas disagree after training is ``failed``).

Nothing is left behind: each worker dies with the launcher (``PR_SET_PDEATHSIG``),
so an orchestrator timeout that kills the launcher kills them too; a worker that
dies or fails stops the others at once (they would wait forever in the next
collective), and the cell is ``failed`` with which worker and why.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config import RunSettings

TASK_ENV = "TFBENCH_MW_TASK"  # a multiworker task process's index (0: the chief)
POLL_S = 0.1
# What TensorFlow raises in a worker whose collective lost a peer: the consequence of
# another worker's failure (SIGKILL, a raise), not its cause.
PEER_LOST_ERRORS = ("UnavailableError", "CancelledError", "AbortedError",
                    "DeadlineExceededError")


def lost_a_peer(reason: str) -> bool:
    """Whether a worker's failure reason is TensorFlow's error for a lost collective peer."""
    return any(name in reason for name in PEER_LOST_ERRORS)


def root_cause(failures: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """Which of several failed workers to report, and why: the first whose reason is not a
    lost-peer error (when worker 1 is killed, worker 0's collective fails with
    ``UnavailableError`` a moment later, and either may be read first), with the workers
    that failed in consequence named; the first failure when every one lost a peer."""
    cause = next((f for f in failures if not lost_a_peer(f[1])), None)
    if cause is None:
        return failures[0]
    followers = [i for i, why in failures if lost_a_peer(why)]
    if not followers:
        return cause
    names = ", ".join(str(i) for i in followers)
    return cause[0], f"{cause[1]} (worker {names} then lost its collective peer)"


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now (held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(addresses: list[str], index: int) -> dict[str, Any]:
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the process that started it dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        pass


def _reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code} without a result"


def launch_local(spec_path: Path, result_path: Path, settings: RunSettings) -> int:
    """Run the cell of ``spec_path`` as ``settings.workers`` processes; write the result."""
    n = settings.workers
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    procs: list[subprocess.Popen[bytes]] = []
    results = [result_path.with_name(f"{result_path.stem}.w{i}.json") for i in range(n)]
    logs = [result_path.with_name(f"{result_path.stem}.w{i}.log") for i in range(n)]
    print(f"multiworker: {n} workers on {', '.join(addresses)}", flush=True)
    try:
        for i in range(n):
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config(addresses, i)),
                   TASK_ENV: str(i)}
            with logs[i].open("w") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "harness.worker", str(spec_path), str(results[i])],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    preexec_fn=die_with_parent))
        failure = _wait_all(procs, results)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for i, log in enumerate(logs):
            if log.exists():
                print(f"--- multiworker worker {i} ---\n{log.read_text(errors='replace')}",
                      flush=True)
                log.unlink()
    outcome = failure or merge_results([_read(r) for r in results])
    for r in results:
        r.unlink(missing_ok=True)
    # The attempt token ties the merged result to the spec it answers (orchestrator.run_block).
    outcome["attempt"] = json.loads(spec_path.read_text()).get("attempt")
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, default=str))
    tmp.replace(result_path)
    return 0


def _wait_all(procs: list[subprocess.Popen[bytes]], results: list[Path]) -> dict[str, Any] | None:
    """Wait until every worker has exited; on the first one that dies without a result
    (or exits non-zero), stop the others and return the failed outcome."""
    while True:
        running = 0
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None:
                running += 1
            elif code != 0 or not results[i].exists():
                return {"status": "failed",
                        "reason": f"multiworker worker {i} of {len(procs)} {_reason(code)}; "
                                  "the other workers were stopped"}
        if not running:
            return None
        time.sleep(POLL_S)


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The cell's result: the chief's (task 0) timed steps; the first non-ok worker's status;
    ``failed`` when the replicas' weights differ after the measured steps."""
    failures = [(i, str(p.get("reason", ""))) for i, p in enumerate(parts)
                if p.get("status") != "ok"]
    if failures:
        bad, why = root_cause(failures)
        return {"status": parts[bad].get("status", "failed"),
                "reason": f"multiworker worker {bad}: {why}"}
    chief = dict(parts[0])
    digests = [d for p in parts for d in p.get("replica_weights_sha1", [])]
    detail = dict(chief.get("engine_detail") or {})
    detail["replica_weights_sha1"] = digests
    detail["worker_steps"] = [len(p.get("steps", [])) for p in parts]
    chief["engine_detail"] = detail
    lifetime = [p.get("host_rss_peak_bytes") for p in parts]
    chief["host_rss_peak_bytes"] = max((x for x in lifetime if x is not None), default=None)
    if len(set(digests)) != 1:
        return {"status": "failed", "engine_detail": detail,
                "reason": "multiworker replicas hold different weights after the measured "
                          f"steps ({len(set(digests))} distinct digests over {len(digests)})"}
    if len({len(p.get("steps", [])) for p in parts}) != 1:
        return {"status": "failed", "engine_detail": detail,
                "reason": "multiworker workers took different step counts "
                          f"{detail['worker_steps']}"}
    return chief
