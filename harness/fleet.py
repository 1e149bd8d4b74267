"""Fleet runs on Ray: each cell a Ray task on a node offering the ``tfbench`` resource.

``tfbench run --ray-address ADDRESS`` connects to a running Ray cluster (Ray's own
address conventions: ``auto``, ``host:port``, ``ray://host:port``) and selects the
alive nodes that offer the custom resource ``tfbench`` (``--nodes`` narrows them by
Ray node label ``key=value``, hostname or host label). The driver keeps a queue of
cells and gives each idle node the next one as a task pinned to it
(``NodeAffinitySchedulingStrategy``, and ``resources={"tfbench": 1}`` so a node
never runs two cells at once). On the node the task runs the cell exactly as a
local run does (`RunSession.run_block`: the same worker process, timeout and
status mapping) with that node's own samplers for the cell's window, and returns
the blocks, the samples and the logs; the driver writes the one results directory.

Clocks stay per host: each node's times are on its own monotonic clock, from an
origin chosen at the first contact; the wall-clock offset to the driver is
recorded (environment.json ``fleet_hosts``), never applied.

A node that dies mid-cell, or a task that raises, gives that cell ``failed`` with
the reason; the other cells go on. ``--resume`` reruns such a cell (its result
never came back: ``LOST_REASON`` rows are dropped and the cell runs again).

Ray is imported inside the functions (extra ``ray``).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config import Cell, RunSettings
from harness.envmodel import Environment, FleetHost
from harness.errors import UserError
from harness.progress import Progress
from harness.records import (
    CONFIGS_FILE,
    SAMPLES_FILE,
    STEPS_FILE,
    RunFiles,
    read_table,
    write_environment,
)

RESOURCE = "tfbench"
LOST_REASON = "result lost on the fleet"  # the start of a reason `--resume` reruns
ENVIRONMENTS_DIR = "environments"
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FleetNode:
    """An alive Ray node offering ``tfbench``; ``host`` is its label in the results
    (the hostname, with the node id's first 8 digits where hostnames repeat)."""

    node_id: str
    hostname: str
    host: str
    labels: dict[str, str] = field(default_factory=dict)
    gpus: float = 0.0


_REMOTE: dict[Any, Any] = {}  # the Ray remote function of each task function


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a TCP connection."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError.invalid("ray-address", address, "auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"ray-address: {address!r} is not reachable "
                        f"({exc.strerror or exc}); start a head with `ray start --head` "
                        "or give its address") from None


def connect(address: str) -> None:
    """Connect this process to the cluster at ``address``; UserError if there is none."""
    check_reachable(address)
    try:
        import ray
    except ImportError:
        raise UserError("ray-address: Ray is not installed; pip install 'tfbench[ray]'") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"ray-address: cannot connect to {address!r}: {exc}") from None


def nodes_from(table: Sequence[Mapping[str, Any]]) -> list[FleetNode]:
    """The alive nodes offering ``tfbench`` in a `ray.nodes()` table, in node-id order."""
    alive = [n for n in table if n.get("Alive") and n.get("Resources", {}).get(RESOURCE, 0) >= 1]
    alive.sort(key=lambda n: str(n["NodeID"]))
    names = [str(n.get("NodeManagerHostname", "")) for n in alive]
    out = []
    for n, name in zip(alive, names, strict=True):
        node_id = str(n["NodeID"])
        host = name if names.count(name) == 1 else f"{name}-{node_id[:8]}"
        labels = {str(k): str(v) for k, v in dict(n.get("Labels") or {}).items()
                  if not str(k).startswith("ray.io/")}
        gpus = float(n.get("Resources", {}).get("GPU", 0.0))
        out.append(FleetNode(node_id, name, host, labels, gpus))
    return out


def select_nodes(nodes: Sequence[FleetNode], selectors: Sequence[str]) -> list[FleetNode]:
    """The nodes matching any selector (``key=value`` label, hostname, host label or node
    id); all of them without selectors. UserError when nothing is left."""
    if not nodes:
        raise UserError(f"ray-address: no alive node offers the resource {RESOURCE!r}; start "
                        f"board nodes with ray start --address HEAD --resources "
                        f"'{{\"{RESOURCE}\": 1}}'")
    if not selectors:
        return list(nodes)
    chosen = []
    for node in nodes:
        for sel in selectors:
            key, eq, value = sel.partition("=")
            if (eq and node.labels.get(key) == value) or \
                    (not eq and sel in (node.hostname, node.host, node.node_id)):
                chosen.append(node)
                break
    unmatched = [s for s in selectors if not any(
        (s.partition("=")[1] and n.labels.get(s.partition("=")[0]) == s.partition("=")[2])
        or s in (n.hostname, n.host, n.node_id) for n in nodes)]
    if unmatched:
        known = "; ".join(f"{n.host} ({', '.join(f'{k}={v}' for k, v in n.labels.items())})"
                          for n in nodes)
        raise UserError(f"nodes: {unmatched[0]!r} matches no node offering {RESOURCE!r}; "
                        f"allowed: a label key=value or a hostname of: {known}")
    return chosen


def discover(address: str, selectors: Sequence[str]) -> list[FleetNode]:
    """Connect and select: everything a fleet run checks before anything is written."""
    import ray

    connect(address)
    return select_nodes(nodes_from(ray.nodes()), selectors)


# -- on the node -----------------------------------------------------------------------
def probe_node(run_id: str, command_line: list[str], profile: str) -> dict[str, Any]:
    """Runs on a node: its clocks, hostname and its own environment (origin = now)."""
    from harness.environment import collect

    t0 = time.perf_counter_ns()
    wall = time.time_ns()
    env = collect(run_id, t0, command_line, profile).to_json()
    return {"perf_ns": t0, "wall_ns": wall, "environment": env}


def run_on_node(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs on a node: one cell's blocks as a local run would, with this node's samplers."""
    from harness.orchestrator import RunSession
    from harness.worker import settings_from_dict

    if (payload.get("worker_env") or {}).get("TFBENCH_FAULT") == "task-raise":
        raise RuntimeError("injected (TFBENCH_FAULT=task-raise)")  # the fault tests' hook
    cell = Cell.from_factors(payload["cell"])
    settings = settings_from_dict(payload["settings"])
    # Ray sets OMP_NUM_THREADS=1 in a task that asks for no CPU; a local run has no such
    # cap, so neither has the cell here (PyTorch's intra-op threads follow it). A value
    # the run asks for comes in worker_env, which the worker's environment takes last.
    os.environ.pop("OMP_NUM_THREADS", None)
    tmp = Path(tempfile.mkdtemp(prefix=f"tfbench-{payload['run_id']}-"))
    session = RunSession(tmp, settings, run_id=payload["run_id"], t0_ns=payload["t0_ns"],
                         worker_env=payload.get("worker_env"), host=payload["host"])
    # the worker dies with this task (lifecycle.die_with_parent): a lost node leaves no orphan
    try:
        status = session.start_samplers()
        blocks = [session.run_block(cell, b) for b in range(settings.interleave)]
        session.stop_samplers()
        samples = []
        if (tmp / SAMPLES_FILE).exists():
            with (tmp / SAMPLES_FILE).open(newline="") as fh:
                samples = list(csv.DictReader(fh))
        logs = {p.name: p.read_text(errors="replace") for p in (tmp / "logs").iterdir()}
        return {"blocks": [asdict(b) for b in blocks], "samples": samples, "logs": logs,
                "sampler_status": status}
    finally:
        session.close()
        shutil.rmtree(tmp, ignore_errors=True)


# -- on the driver ---------------------------------------------------------------------
@dataclass
class Fleet:
    """The selected nodes of one fleet run and what the driver learnt about them."""

    nodes: list[FleetNode]
    origins: dict[str, int] = field(default_factory=dict)  # host -> its clock origin (ns)
    worker_env: dict[str, str] = field(default_factory=dict)
    per_cell_env: dict[str, dict[str, str]] = field(default_factory=dict)  # tests: faults
    command_line: list[str] = field(default_factory=list)
    profile: str = ""
    _samplers_recorded: set[str] = field(default_factory=set)

    def _pinned(self, node: FleetNode, fn: Any, **options: Any) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        # A cell gets the node's GPUs, so Ray's CUDA_VISIBLE_DEVICES shows them to it.
        return _remote(fn).options(num_cpus=0, num_gpus=node.gpus if options else 0,
                                   max_retries=0, scheduling_strategy=strategy, **options)

    def _record_samplers(self, run_dir: Path, node: FleetNode, status: dict[str, str]) -> None:
        """The node's samplers (active, or why not) in its environments/<host>.json."""
        from harness.records import load_host_environment

        path = run_dir / ENVIRONMENTS_DIR / f"{node.host}.json"
        env = load_host_environment(path, "")
        write_environment(path, replace(env, samplers=dict(status)))
        self._samplers_recorded.add(node.host)

    def start(self, session: Any) -> None:
        """Probe every node and list them (and their environment files) in the run's
        environment.json; a resumed run adds the nodes it has not seen."""
        from harness.records import load_environment

        hosts = self.probe(session.run_dir, session.run_id, session.t0_ns, self.command_line,
                           self.profile)
        env = load_environment(session.run_dir)
        known = [h for h in env.fleet_hosts if h.node_id not in {x.node_id for x in hosts}]
        data = {**replace(env, fleet_hosts=(*known, *hosts)).to_json()}
        data.pop("schema_version", None)
        write_environment(session.run_dir / "environment.json", data)
        session.remote_samples = True

    def probe(self, run_dir: Path, run_id: str, t0_ns: int, command_line: list[str],
              profile: str) -> list[FleetHost]:
        """Each node's clock origin (aligned to the driver's run clock at first contact,
        offsets recorded) and environment, written to environments/<host>.json."""
        import ray

        (run_dir / ENVIRONMENTS_DIR).mkdir(exist_ok=True)
        hosts = []
        for node in list(self.nodes):
            before = time.perf_counter_ns()
            wall_before = time.time_ns()
            try:
                reply = ray.get(self._pinned(node, probe_node).remote(run_id, command_line,
                                                                      profile))
            except ray.exceptions.RayError as exc:  # gone since it was selected: not used
                print(f"tfbench: fleet node {node.host} left out: {type(exc).__name__}",
                      file=sys.stderr)
                self.nodes.remove(node)
                continue
            after = time.perf_counter_ns()
            mid = (before + after) // 2
            origin = int(reply["perf_ns"]) - (mid - t0_ns)
            self.origins[node.host] = origin
            env = dict(reply["environment"])
            env.update(clock_origin_ns=origin, host=node.host)
            name = f"{ENVIRONMENTS_DIR}/{node.host}.json"
            write_environment(run_dir / name, Environment.from_json(env))
            offset = (int(reply["wall_ns"]) - (wall_before + (after - before) // 2)) / 1e9
            hosts.append(FleetHost(node.host, node.node_id, name, origin, offset,
                                   (after - before) / 1e9, node.labels))
        return hosts

    def workers_of(self, cell: Cell, settings: RunSettings) -> int:
        """Nodes a cell takes at once: one, or one per worker of a multiworker cell."""
        return settings.workers if cell.strategy == "multiworker" else 1

    def check(self, cells: Sequence[Cell], settings: RunSettings) -> None:
        """Before anything is written: every cell fits on the selected nodes."""
        need = max((self.workers_of(c, settings) for c in cells), default=1)
        if need > len(self.nodes):
            raise UserError(f"workers: {need} exceeds the {len(self.nodes)} selected fleet "
                            "node(s); a multiworker cell on a fleet runs one worker per node "
                            "(Ray Train), so allowed: workers <= the number of nodes")

    def _payload(self, session: Any, cell: Cell, node: FleetNode) -> dict[str, Any]:
        return {"cell": cell.factors(), "settings": _settings(session.settings),
                "run_id": session.run_id, "t0_ns": self.origins[node.host], "host": node.host,
                "worker_env": {**self.worker_env, **self.per_cell_env.get(cell.config_id, {})}}

    def _submit(self, session: Any, cell: Cell, nodes: list[FleetNode]) -> Any:
        """A plain cell: a task pinned to its node. A multiworker cell: a Ray Train run
        over its nodes (harness.ray_train), driven by a task on the driver's node."""
        payload = self._payload(session, cell, nodes[0])
        if cell.strategy != "multiworker":
            return self._pinned(nodes[0], run_on_node, resources={RESOURCE: 1}).remote(payload)
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from harness.ray_train import run_multiworker

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        placements = {n.node_id: {"host": n.host, "t0_ns": self.origins[n.host]} for n in nodes}
        return _remote(run_multiworker).options(num_cpus=0, max_retries=0,
                                                scheduling_strategy=here).remote(
            payload, [n.node_id for n in nodes], placements)

    def run_schedule(self, session: Any, cells: Sequence[Cell], progress: Progress,
                     on_cell: Callable[[Any], None] | None = None) -> list[Any]:
        """Give each idle node the next cell until all are recorded (the driver loop); a
        multiworker cell waits until ``workers`` nodes are idle and takes them all."""
        import ray

        queue = list(cells)
        idle = list(self.nodes)
        running: dict[Any, tuple[Cell, list[FleetNode]]] = {}
        outcomes = []
        while queue or running:
            while queue and len(idle) >= self.workers_of(queue[0], session.settings):
                cell = queue.pop(0)
                nodes = [idle.pop(0) for _ in range(self.workers_of(cell, session.settings))]
                running[self._submit(session, cell, nodes)] = (cell, nodes)
                progress.started(f"{cell.config_id} @ {', '.join(n.host for n in nodes)}")
            if not running:  # cells left but not enough selected nodes alive
                from harness.orchestrator import BlockOutcome

                for rest in queue:
                    why = ("no selected node is alive" if not idle else
                           f"{len(idle)} selected node(s) alive, the cell needs "
                           f"{self.workers_of(rest, session.settings)}")
                    lost = BlockOutcome("failed", f"{LOST_REASON}: {why}")
                    outcome = session.record(rest, [lost], "sequential")
                    progress.finished(rest.config_id, outcome.status, outcome.reason)
                    outcomes.append(outcome)
                break
            done, _ = ray.wait(list(running), num_returns=1)
            cell, nodes = running.pop(done[0])
            if cell.strategy == "multiworker":
                blocks, alive = self._collect_multiworker(session, cell, nodes, done[0])
            else:
                blocks, alive = self._collect(session, cell, nodes[0], done[0])
            idle.extend(alive)
            outcome = session.record(cell, blocks, "sequential")
            detail = (f"median {outcome.row['step_s_median'] * 1e3:.2f} ms on {nodes[0].host}"
                      if outcome.status == "ok" else outcome.reason)
            progress.finished(cell.config_id, outcome.status, detail)
            outcomes.append(outcome)
            if on_cell:
                on_cell(outcome)
        return outcomes

    def _collect(self, session: Any, cell: Cell, node: FleetNode,
                 ref: Any) -> tuple[list[Any], list[FleetNode]]:
        """The cell's blocks from a finished task (its samples and logs written to the
        results directory), or one failed block with the reason; and the nodes that live
        on."""
        import ray

        from harness.orchestrator import BlockOutcome

        try:
            reply = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task itself raised: the node is fine
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            reason = f"Ray task on {node.host} raised {type(cause).__name__}: {cause}"
            return [BlockOutcome("failed", _one_line(reason), host=node.host,
                                 node_id=node.node_id)], [node]
        except ray.exceptions.RayError as exc:  # node died, worker crashed, object lost
            # Ray says NodeDiedError before its node table marks the node dead
            died = isinstance(exc, ray.exceptions.NodeDiedError) or \
                node.node_id not in _alive_ids()
            what = "lost mid-cell" if died else "lost the cell's task"
            reason = (f"{LOST_REASON}: node {node.host} ({node.node_id[:8]}) {what}: "
                      f"{type(exc).__name__}")
            return [BlockOutcome("failed", reason, host=node.host, node_id=node.node_id)], \
                [] if died else [node]
        return self._ingest(session, node, reply), [node]

    def _collect_multiworker(self, session: Any, cell: Cell, nodes: list[FleetNode],
                             ref: Any) -> tuple[list[Any], list[FleetNode]]:
        """A multiworker cell's blocks from its Ray Train run (harness.ray_train): every
        worker's samples and logs written, the blocks merged; or the reason it failed
        (`LOST_REASON` when one of its nodes died, so `--resume` reruns it)."""
        import ray

        from harness.orchestrator import BlockOutcome
        from harness.ray_train import failure_reason, first_failure, merge_blocks

        try:
            reply = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reply = {"replies": [], "error": f"{type(exc).__name__}: {exc}",
                     "workers": len(nodes)}
        alive_ids = _alive_ids()
        alive = [n for n in nodes if n.node_id in alive_ids]
        lost = [n for n in nodes if n not in alive]
        by_node = {n.node_id: n for n in nodes}
        per_rank = []
        for r in reply["replies"]:
            node = by_node.get(r["node_id"])
            if node is None:  # Ray Train ignored the placement: not the nodes the cell holds
                reply["error"] = (f"Ray Train placed worker {r['rank']} on node "
                                  f"{r['node_id'][:8]}, not one of the cell's nodes")
                r["error"] = reply["error"]
            elif "blocks" in r:
                per_rank.append(self._ingest(session, node, r, suffix=f".w{r['rank']}"
                                             if r["rank"] else ""))
        chief = by_node.get(reply["replies"][0]["node_id"], nodes[0]) if reply["replies"] \
            else nodes[0]
        complete = (len(per_rank) == reply["workers"] and not reply["error"]
                    and reply["replies"][0]["rank"] == 0)
        if complete:
            return merge_blocks(per_rank, [r["host"] for r in reply["replies"]]), alive
        failures = [(r["rank"], first_failure(r)) for r in reply["replies"] if first_failure(r)]
        why = failure_reason(failures, {r["rank"]: r["host"] for r in reply["replies"]})[1] \
            if failures else ""
        if lost:
            why = (f"{LOST_REASON}: node {lost[0].host} ({lost[0].node_id[:8]}) lost mid-cell"
                   f"{'; ' + why if why else ''}")
        why = why or f"Ray Train run failed: {reply['error'] or 'a worker gave no reply'}"
        return [BlockOutcome("failed", _one_line(why), host=chief.host,
                             node_id=chief.node_id)], alive

    def _ingest(self, session: Any, node: FleetNode, reply: dict[str, Any],
                suffix: str = "") -> list[Any]:
        """A node's reply into the results directory (sampler status, logs with
        ``suffix`` before ``.log``, samples) and its blocks."""
        from harness.orchestrator import BlockOutcome

        files = RunFiles(session.run_dir)
        if reply.get("sampler_status") and node.host not in self._samplers_recorded:
            self._record_samplers(session.run_dir, node, reply["sampler_status"])
        for name, text in reply["logs"].items():
            (session.run_dir / "logs" / name.replace(".log", f"{suffix}.log")).write_text(text)
        rows = [{**r, "host": node.host, "node_id": node.node_id} for r in reply["samples"]]
        files.appender(SAMPLES_FILE).append(_no_empty(rows))
        blocks = []
        for b in reply["blocks"]:
            b.update(host=node.host, node_id=node.node_id)
            if isinstance(b.get("load"), dict):  # the node's own load window, as measured
                from harness.load import LoadWindow

                b["load"] = LoadWindow(**b["load"])
            blocks.append(BlockOutcome(**b))
        return blocks


def _alive_ids() -> set[str]:
    """The ids of the nodes Ray's node table lists as alive (one call to Ray)."""
    import ray

    return {str(n["NodeID"]) for n in ray.nodes() if n.get("Alive")}


def _remote(fn: Any) -> Any:
    """The Ray remote function of ``fn``, made once."""
    import ray

    if fn not in _REMOTE:
        _REMOTE[fn] = ray.remote(fn)
    return _REMOTE[fn]


def _settings(settings: RunSettings) -> dict[str, Any]:
    from harness.worker import settings_to_dict

    return settings_to_dict(settings)


def _no_empty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV text back to values: an empty cell is None (not the empty string)."""
    return [{k: (None if v == "" else v) for k, v in r.items()} for r in rows]


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def lost_config_ids(run_dir: Path) -> set[str]:
    """Cells whose result was lost on the fleet (node died): `--resume` reruns them."""
    if not (run_dir / CONFIGS_FILE).exists():
        return set()
    configs = read_table(run_dir, CONFIGS_FILE)
    lost = configs["reason"].fillna("").astype(str).str.startswith(LOST_REASON)
    return set(configs.loc[lost, "config_id"].astype(str))


def drop_cells(run_dir: Path, config_ids: set[str]) -> None:
    """Rewrite the three tables without ``config_ids``' rows (each file atomically), so a
    rerun cell has one row, not two."""
    if not config_ids:
        return
    for name in (CONFIGS_FILE, STEPS_FILE, SAMPLES_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                continue
            col = header.index("config_id")
            kept = [r for r in reader if r[col] not in config_ids]
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(kept)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
