"""The typed ``environment.json`` of a run: what `environment.collect` writes, what readers read.

Every field has one key in the file and one type here. `Environment.from_json`
checks types and refuses a file whose field has the wrong type (a
`UserError` naming the field, the value and what is allowed); a field an older
file lacks reads as ``None`` (unknown), never as a guessed default. Keys this
model does not know are kept in ``extra`` so that rewriting a file (the
orchestrator adds the samplers' summary at the end of a run) loses nothing,
but no reader looks inside ``extra``. This module never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from harness.envfields import (
    _list,
    _mapping,
    _opt_bool,
    _opt_float,
    _opt_int,
    _opt_str,
    _str_map,
)
from harness.errors import UserError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TensorFlowBuild:
    """``tf.sysconfig.get_build_info()`` facts; ``None`` where the build does not say."""

    is_cuda_build: bool | None = None
    is_rocm_build: bool | None = None
    is_tensorrt_build: bool | None = None
    cuda_version: str | None = None
    cudnn_version: str | None = None
    cuda_compute_capabilities: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "tensorflow_build"
                  ) -> TensorFlowBuild:
        caps = _list(data, "cuda_compute_capabilities", where) or []
        return cls(_opt_bool(data, "is_cuda_build", where),
                   _opt_bool(data, "is_rocm_build", where),
                   _opt_bool(data, "is_tensorrt_build", where),
                   _opt_str(data, "cuda_version", where), _opt_str(data, "cudnn_version", where),
                   tuple(str(c) for c in caps))

    def to_json(self) -> dict[str, Any]:
        return {"is_cuda_build": self.is_cuda_build, "is_rocm_build": self.is_rocm_build,
                "is_tensorrt_build": self.is_tensorrt_build, "cuda_version": self.cuda_version,
                "cudnn_version": self.cudnn_version,
                "cuda_compute_capabilities": list(self.cuda_compute_capabilities)}


@dataclass(frozen=True)
class TensorRT:
    """Whether TF-TRT can load TensorRT here: linked and loaded versions, or the error."""

    enabled: bool
    linked: str | None = None
    loaded: str | None = None
    error: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "tensorrt") -> TensorRT:
        return cls(bool(_opt_bool(data, "enabled", where)), _opt_str(data, "linked", where),
                   _opt_str(data, "loaded", where), _opt_str(data, "error", where))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled, "linked": self.linked,
                               "loaded": self.loaded}
        if self.error is not None:
            out["error"] = self.error
        return out

    def describe(self) -> str:
        """``"8.6.2"`` (the loaded version) or ``"not available"``."""
        if not self.enabled:
            return "not available"
        return self.loaded or self.linked or "available"


@dataclass(frozen=True)
class Gpu:
    """One GPU TensorFlow sees: its device name and ``get_device_details`` as text."""

    name: str
    device_name: str | None = None
    compute_capability: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str) -> Gpu:
        if not isinstance(data, Mapping):
            raise UserError.invalid(f"environment.json: {where}", data, "an object")
        name = _opt_str(data, "name", where)
        if name is None:
            raise UserError.invalid(f"environment.json: {where}.name", None, "a string")
        return cls(name, _opt_str(data, "device_name", where),
                   _opt_str(data, "compute_capability", where))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.device_name is not None:
            out["device_name"] = self.device_name
        if self.compute_capability is not None:
            out["compute_capability"] = self.compute_capability
        return out

    def describe(self) -> str:
        return self.device_name or self.name


@dataclass(frozen=True)
class JetsonBoard:
    """Board facts from jtop (``jetson.board['hardware']``, nvpmodel, jetson_clocks)."""

    model: str | None = None
    module: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    nvpmodel: str | None = None
    jetson_clocks: str | None = None  # "running", "inactive", ... as jtop reports it
    hardware: dict[str, str] = field(default_factory=dict)
    warning: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "jetson") -> JetsonBoard:
        return cls(_opt_str(data, "model", where), _opt_str(data, "module", where),
                   _opt_str(data, "l4t", where), _opt_str(data, "jetpack", where),
                   _opt_str(data, "nvpmodel", where),
                   _opt_str(data, "jetson_clocks", where),
                   _str_map(data, "hardware", where), _opt_str(data, "warning", where))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "module": self.module, "l4t": self.l4t,
                "jetpack": self.jetpack, "hardware": dict(self.hardware),
                "nvpmodel": self.nvpmodel, "jetson_clocks": self.jetson_clocks,
                "warning": self.warning}


@dataclass(frozen=True)
class SamplerProblem:
    """One problem a sampler reported while the run went on."""

    sampler: str
    message: str

    def describe(self) -> str:
        return f"sampler {self.sampler}: {self.message}"


@dataclass(frozen=True)
class Sampling:
    """How sampling went: which samplers ran, how many rows, problems, when samples stopped."""

    active: tuple[str, ...] = ()
    status: dict[str, str] = field(default_factory=dict)
    rows: int | None = None
    samples: dict[str, int] = field(default_factory=dict)
    problems: tuple[SamplerProblem, ...] = ()
    last_sample_s: float | None = None
    died_at_s: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "sampling") -> Sampling:
        problems = []
        for i, p in enumerate(_list(data, "problems", where) or []):
            if not isinstance(p, Mapping):
                raise UserError.invalid(f"environment.json: {where}.problems[{i}]", p,
                                        "an object with sampler and message")
            problems.append(SamplerProblem(str(p.get("sampler", "")),
                                           str(p.get("message", ""))))
        counts = _mapping(data, "samples", where) or {}
        return cls(tuple(str(a) for a in _list(data, "active", where) or []),
                   _str_map(data, "status", where), _opt_int(data, "rows", where),
                   {str(k): int(v) for k, v in counts.items()}, tuple(problems),
                   _opt_float(data, "last_sample_s", where), _opt_float(data, "died_at_s", where))

    def to_json(self) -> dict[str, Any]:
        return {"active": list(self.active), "status": dict(self.status), "rows": self.rows,
                "samples": dict(self.samples),
                "problems": [{"sampler": p.sampler, "message": p.message}
                             for p in self.problems],
                "last_sample_s": self.last_sample_s, "died_at_s": self.died_at_s}


@dataclass(frozen=True)
class Unavailable:
    """A requested sampler, engine or device this machine cannot provide, and why; decided
    once per run by the orchestrator (`harness.run_availability`)."""

    kind: str  # "sampler", "engine" or "device"
    name: str
    reason: str
    cells: int | None = None  # cells skipped for it (None for a sampler)

    @classmethod
    def from_json(cls, data: Any, where: str) -> Unavailable:
        if not isinstance(data, Mapping):
            raise UserError.invalid(f"environment.json: {where}", data,
                                    "an object with kind, name, reason")
        return cls(str(data.get("kind", "")), str(data.get("name", "")),
                   str(data.get("reason", "")), _opt_int(data, "cells", where))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "reason": self.reason,
                "cells": self.cells}

    def describe(self) -> str:
        skipped = "" if self.cells is None else \
            f" ({self.cells} cell{'s' if self.cells != 1 else ''} skipped)"
        return f"{self.kind} {self.name} unavailable{skipped}: {self.reason}"


@dataclass(frozen=True)
class FleetHost:
    """One node of a fleet run (``tfbench run --ray-address``), listed in the run's
    environment.json; its own environment is ``environment_file`` (relative to the run).
    Times in its rows are on its own monotonic clock from ``clock_origin_ns``;
    ``clock_offset_s`` (its wall clock minus the driver's, estimated at the midpoint of
    a round trip of ``clock_rtt_s``) is recorded, never applied."""

    host: str
    node_id: str
    environment_file: str
    clock_origin_ns: int
    clock_offset_s: float
    clock_rtt_s: float
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str) -> FleetHost:
        if not isinstance(data, Mapping):
            raise UserError.invalid(f"environment.json: {where}", data, "an object")
        try:
            return cls(host=str(data["host"]), node_id=str(data["node_id"]),
                       environment_file=str(data["environment_file"]),
                       clock_origin_ns=int(data["clock_origin_ns"]),
                       clock_offset_s=float(data["clock_offset_s"]),
                       clock_rtt_s=float(data["clock_rtt_s"]),
                       labels={str(k): str(v) for k, v in dict(data.get("labels", {})).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"environment.json: {where}: not a fleet host ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "node_id": self.node_id,
                "environment_file": self.environment_file,
                "clock_origin_ns": self.clock_origin_ns, "clock_offset_s": self.clock_offset_s,
                "clock_rtt_s": self.clock_rtt_s, "labels": dict(self.labels)}


@dataclass(frozen=True)
class RunRequest:
    """What was asked for, stored at the start so that ``--resume`` restores the run as it
    was: the profile as named, the matrix and settings after the command-line overrides,
    and the overrides themselves (flag destination -> value)."""

    profile: str
    matrix: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "run_request") -> RunRequest:
        profile = _opt_str(data, "profile", where)
        if profile is None:
            raise UserError.invalid(f"environment.json: {where}.profile", None, "a string")
        matrix = _mapping(data, "matrix", where) or {}
        for key, values in matrix.items():
            if not isinstance(values, list):
                raise UserError.invalid(f"environment.json: {where}.matrix.{key}", values,
                                        "a list")
        return cls(profile, {str(k): tuple(v) for k, v in matrix.items()},
                   dict(_mapping(data, "settings", where) or {}),
                   dict(_mapping(data, "overrides", where) or {}))

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile,
                "matrix": {k: list(v) for k, v in self.matrix.items()},
                "settings": dict(self.settings), "overrides": dict(self.overrides)}


@dataclass(frozen=True)
class PeakProbe:
    """One device's attainable fp32 FLOP/s and copy bandwidth (harness.peak), or why not."""

    status: str  # "ok" or "skipped"
    reason: str | None = None
    peak_flops_per_s: float | None = None
    peak_bytes_per_s: float | None = None
    method: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str) -> PeakProbe:
        if not isinstance(data, Mapping):
            raise UserError.invalid(f"environment.json: {where}", data, "an object")
        status = _opt_str(data, "status", where)
        if status not in ("ok", "skipped"):
            raise UserError.invalid(f"environment.json: {where}.status", status, "ok, skipped")
        probe = cls(status, _opt_str(data, "reason", where),
                    _opt_float(data, "peak_flops_per_s", where),
                    _opt_float(data, "peak_bytes_per_s", where), _opt_str(data, "method", where))
        if status == "ok" and (probe.peak_flops_per_s is None or probe.peak_bytes_per_s is None):
            raise UserError(f"environment.json: {where}: an ok probe needs peak_flops_per_s and "
                            "peak_bytes_per_s")
        return probe

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        for key in ("reason", "peak_flops_per_s", "peak_bytes_per_s", "method"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class RunLoad:
    """The machine's load over a run (harness.load): other processes' CPU in cores."""

    wall_s: float | None = None
    other_cpu_cores: float | None = None
    load_avg_1m: float | None = None
    cpu_count: int | None = None
    busy: bool | None = None
    busy_fraction_threshold: float | None = None
    method: str | None = None
    at_start: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "load") -> RunLoad:
        start = _mapping(data, "at_start", where) or {}
        return cls(_opt_float(data, "wall_s", where), _opt_float(data, "other_cpu_cores", where),
                   _opt_float(data, "load_avg_1m", where), _opt_int(data, "cpu_count", where),
                   _opt_bool(data, "busy", where),
                   _opt_float(data, "busy_fraction_threshold", where),
                   _opt_str(data, "method", where),
                   {str(k): _opt_float(start, str(k), f"{where}.at_start") or 0.0
                    for k in start})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in (
            "wall_s", "other_cpu_cores", "load_avg_1m", "cpu_count", "busy",
            "busy_fraction_threshold", "method")}
        if self.at_start:
            out["at_start"] = dict(self.at_start)
        return out


@dataclass(frozen=True)
class AbSide:
    """One side of a `tfbench ab` run: its interpreter, project, versions, flags."""

    python: str | None = None
    executable: str | None = None
    harness_version: str | None = None
    harness_path: str | None = None
    rev: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # venv, python_command, ...

    _KEYS: ClassVar[tuple[str, ...]] = ("python", "executable", "harness_version",
                                        "harness_path", "rev")

    @classmethod
    def from_json(cls, data: Any, where: str) -> AbSide:
        if not isinstance(data, Mapping):
            raise UserError.invalid(f"environment.json: {where}", data, "an object")
        known = {*cls._KEYS, "env", "flags", "packages"}
        python, executable, version, path, rev = (_opt_str(data, k, where) for k in cls._KEYS)
        return cls(python, executable, version, path, rev,
                   env=_str_map(data, "env", where), flags=_str_map(data, "flags", where),
                   packages=_str_map(data, "packages", where),
                   extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update({k: getattr(self, k) for k in self._KEYS})
        out.update(env=dict(self.env), flags=dict(self.flags), packages=dict(self.packages))
        return out


@dataclass(frozen=True)
class AbRun:
    """What made a results directory a `tfbench ab` run: pairs, order, gates, both sides."""

    interleave: int
    order: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    thresholds_text: str | None = None
    sides: dict[str, AbSide] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "ab") -> AbRun:
        thresholds = _mapping(data, "thresholds", where) or {}
        sides = _mapping(data, "sides", where) or {}
        interleave = _opt_int(data, "interleave", where)
        if interleave is None:
            raise UserError(f"environment.json: {where}.interleave is missing")
        return cls(interleave, _opt_str(data, "order", where),
                   {str(k): _opt_float(thresholds, str(k), f"{where}.thresholds") or 0.0
                    for k in thresholds},
                   _opt_str(data, "thresholds_text", where),
                   {str(k): AbSide.from_json(v, f"{where}.sides.{k}") for k, v in sides.items()})

    def to_json(self) -> dict[str, Any]:
        return {"interleave": self.interleave, "order": self.order,
                "thresholds": dict(self.thresholds), "thresholds_text": self.thresholds_text,
                "sides": {k: v.to_json() for k, v in self.sides.items()}}


@dataclass(frozen=True)
class Environment:
    """One run's environment.json. ``None`` means "not recorded", never a default."""

    run_id: str
    schema_version: int = SCHEMA_VERSION
    started_at_utc: str | None = None
    clock_origin_ns: int | None = None
    host: str | None = None
    os: str | None = None
    machine: str | None = None
    python: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    tfbench_version: str | None = None
    git_commit: str | None = None
    command_line: tuple[str, ...] = ()
    profile: str | None = None
    tensorflow_version: str | None = None
    keras_version: str | None = None
    tensorflow_build: TensorFlowBuild | None = None
    tensorrt: TensorRT | None = None
    gpus: tuple[Gpu, ...] | None = None  # None: not probed; (): none visible
    tensorflow_error: str | None = None
    # when the TensorFlow facts above were probed: the run's start, or earlier when the
    # probe's stored answer was reused (harness.probe_cache); None: not recorded
    tensorflow_probed_at_utc: str | None = None
    jetson: JetsonBoard | None = None
    samplers: dict[str, str] = field(default_factory=dict)
    sampling: Sampling | None = None
    # engine -> why it cannot run here, from the TensorFlow probe (None: not probed)
    engines_unavailable: dict[str, str] | None = None
    # what the run asked for and could not have (None: not recorded, older runs)
    unavailable: tuple[Unavailable, ...] | None = None
    fleet_hosts: tuple[FleetHost, ...] = ()  # the nodes of a fleet run; () for a local run
    run_request: RunRequest | None = None  # None: written before tfbench stored it
    peak: dict[str, PeakProbe] = field(default_factory=dict)  # device -> probe (harness.peak)
    load: RunLoad | None = None  # the machine's load over the run (harness.load)
    ab: AbRun | None = None  # present only in `tfbench ab` runs
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], default_run_id: str = "") -> Environment:
        """The typed record of a parsed environment.json (types checked, UserError if wrong)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        command = data.get("command_line")
        if isinstance(command, str):  # a shell string (hand-written files)
            command = command.split()
        if command is not None and not isinstance(command, list):
            raise UserError.invalid("environment.json: command_line", command,
                                    "a list of strings")
        gpus = _list(data, "gpus", "")
        build = _mapping(data, "tensorflow_build", "")
        trt = _mapping(data, "tensorrt", "")
        jetson = _mapping(data, "jetson", "")
        sampling = _mapping(data, "sampling", "")
        engines = _mapping(data, "engines_unavailable", "")
        unavailable = _list(data, "unavailable", "")
        request = _mapping(data, "run_request", "")
        peak = _mapping(data, "peak", "") or {}
        load = _mapping(data, "load", "")
        ab = _mapping(data, "ab", "")
        version = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise UserError.invalid("environment.json: schema_version", version, "integers")
        return cls(
            run_id=_opt_str(data, "run_id", "") or default_run_id,
            schema_version=version,
            started_at_utc=_opt_str(data, "started_at_utc", ""),
            clock_origin_ns=_opt_int(data, "clock_origin_ns", ""),
            host=_opt_str(data, "host", ""), os=_opt_str(data, "os", ""),
            machine=_opt_str(data, "machine", ""), python=_opt_str(data, "python", ""),
            cpu_model=_opt_str(data, "cpu_model", ""), cpu_count=_opt_int(data, "cpu_count", ""),
            tfbench_version=_opt_str(data, "tfbench_version", ""),
            git_commit=_opt_str(data, "git_commit", ""),
            command_line=tuple(str(c) for c in command or ()),
            profile=_opt_str(data, "profile", ""),
            tensorflow_version=_opt_str(data, "tensorflow_version", ""),
            keras_version=_opt_str(data, "keras_version", ""),
            tensorflow_build=None if build is None else TensorFlowBuild.from_json(build),
            tensorrt=None if trt is None else TensorRT.from_json(trt),
            gpus=None if gpus is None else tuple(Gpu.from_json(g, f"gpus[{i}]")
                                                 for i, g in enumerate(gpus)),
            tensorflow_error=_opt_str(data, "tensorflow_error", ""),
            tensorflow_probed_at_utc=_opt_str(data, "tensorflow_probed_at_utc", ""),
            jetson=None if jetson is None else JetsonBoard.from_json(jetson),
            samplers=_str_map(data, "samplers", ""),
            sampling=None if sampling is None else Sampling.from_json(sampling),
            engines_unavailable=None if engines is None else _str_map(data,
                                                                      "engines_unavailable", ""),
            unavailable=None if unavailable is None else tuple(
                Unavailable.from_json(u, f"unavailable[{i}]") for i, u in enumerate(unavailable)),
            fleet_hosts=tuple(FleetHost.from_json(h, f"fleet_hosts[{i}]")
                              for i, h in enumerate(_list(data, "fleet_hosts", "") or ())),
            run_request=None if request is None else RunRequest.from_json(request),
            peak={str(d): PeakProbe.from_json(p, f"peak.{d}") for d, p in peak.items()},
            load=None if load is None else RunLoad.from_json(load),
            ab=None if ab is None else AbRun.from_json(ab),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        """The file's object (keys sorted on writing by `records.write_environment`)."""
        out: dict[str, Any] = dict(self.extra)
        out.update({
            "schema_version": self.schema_version, "run_id": self.run_id,
            "started_at_utc": self.started_at_utc, "clock_origin_ns": self.clock_origin_ns,
            "host": self.host, "os": self.os, "machine": self.machine, "python": self.python,
            "cpu_model": self.cpu_model, "cpu_count": self.cpu_count,
            "tfbench_version": self.tfbench_version, "git_commit": self.git_commit,
            "command_line": list(self.command_line), "profile": self.profile,
            "tensorflow_version": self.tensorflow_version, "keras_version": self.keras_version,
            "tensorflow_build": None if self.tensorflow_build is None
            else self.tensorflow_build.to_json(),
            "tensorrt": None if self.tensorrt is None else self.tensorrt.to_json(),
            "gpus": None if self.gpus is None else [g.to_json() for g in self.gpus],
            "jetson": None if self.jetson is None else self.jetson.to_json(),
            "samplers": dict(self.samplers),
        })
        if self.tensorflow_error is not None:
            out["tensorflow_error"] = self.tensorflow_error
        if self.tensorflow_probed_at_utc is not None:
            out["tensorflow_probed_at_utc"] = self.tensorflow_probed_at_utc
        if self.sampling is not None:
            out["sampling"] = self.sampling.to_json()
        if self.engines_unavailable is not None:
            out["engines_unavailable"] = dict(self.engines_unavailable)
        if self.unavailable is not None:
            out["unavailable"] = [u.to_json() for u in self.unavailable]
        if self.fleet_hosts:  # left out of a local run's file (golden files unchanged)
            out["fleet_hosts"] = [h.to_json() for h in self.fleet_hosts]
        if self.run_request is not None:
            out["run_request"] = self.run_request.to_json()
        if self.peak:
            out["peak"] = {d: p.to_json() for d, p in self.peak.items()}
        if self.load is not None:
            out["load"] = self.load.to_json()
        if self.ab is not None:
            out["ab"] = self.ab.to_json()
        return out

    def with_sampling(self, status: Mapping[str, str], sampling: Sampling | None
                      ) -> Environment:
        """This environment with the samplers' status and end-of-run summary recorded."""
        return replace(self, samplers=dict(status), sampling=sampling)

    # -- what readers ask ----------------------------------------------------------------

    def warnings(self) -> list[str]:
        """Things a reader of the results must know: board clock warnings, sampler problems,
        a TensorFlow probe that failed, samples that stopped early."""
        out: list[str] = []
        if self.jetson is not None and self.jetson.warning:
            out.append(self.jetson.warning)
        if self.tensorflow_error:
            out.append(f"TensorFlow probe: {self.tensorflow_error}")
        if self.sampling is not None:
            out.extend(p.describe() for p in self.sampling.problems)
            if self.sampling.died_at_s is not None:
                out.append(f"sampler process died at t={self.sampling.died_at_s:.1f} s; "
                           f"samples stop at t={self.sampling.last_sample_s} s")
        return out

    def machine_summary(self) -> str:
        """``board; JetPack; power mode`` on a Jetson, else ``CPU, N cores; GPUs``."""
        detail: list[str] = []
        if self.jetson is not None and self.jetson.model:
            detail.append(self.jetson.model)
            if self.jetson.jetpack:
                detail.append(f"JetPack {self.jetson.jetpack}")
            if self.jetson.nvpmodel:
                detail.append(f"power mode {self.jetson.nvpmodel}")
        else:
            if self.cpu_model:
                detail.append(f"{self.cpu_model}, {self.cpu_count} cores" if self.cpu_count
                              else self.cpu_model)
            if self.gpus:
                detail.append(", ".join(g.describe() for g in self.gpus))
        return "; ".join(detail)
