"""The TensorFlow probe's stored answer: reused under the same key, probed afresh when
anything it depends on changes, never stored when the probe failed."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import probe_cache
from harness.probe_cache import PROBED_AT, cached_probe, probe_key


class Probe:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self.answer)


def _clock(text: str) -> Any:
    return lambda: datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _machine(tmp_path: Path, boot: str = "boot-1\n") -> dict[str, Any]:
    (tmp_path / "boot_id").write_text(boot)
    (tmp_path / "dev").mkdir(exist_ok=True)
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "tensorflow-2.20.0.dist-info").mkdir(exist_ok=True)
    return {"paths": [str(site)], "boot_id": tmp_path / "boot_id",
            "nvidia_version": tmp_path / "no-driver", "dev": tmp_path / "dev"}


def test_the_same_key_reuses_the_answer_with_when_it_was_probed(tmp_path: Path) -> None:
    env = {"TFBENCH_CACHE_DIR": str(tmp_path / "cache")}
    key = probe_key(env, **_machine(tmp_path))
    probe = Probe({"tensorflow_version": "2.20.0", "gpus": []})
    first = cached_probe(probe, env, key, now=_clock("2026-12-02T10:00:00"))
    again = cached_probe(probe, env, key, now=_clock("2026-12-02T11:00:00"))
    assert probe.calls == 1
    assert first == again == {"tensorflow_version": "2.20.0", "gpus": [],
                              PROBED_AT: "2026-12-02T10:00:00+00:00"}
    assert [p.name for p in (tmp_path / "cache" / "probe").iterdir()] == [f"{key}.json"]


def test_what_the_answer_depends_on_changes_the_key(tmp_path: Path) -> None:
    machine = _machine(tmp_path)
    base = probe_key({"HOME": "/root"}, **machine)
    assert base is not None
    assert probe_key({"HOME": "/elsewhere", "TFBENCH_CACHE_DIR": "/x"}, **machine) == base
    assert probe_key({"CUDA_VISIBLE_DEVICES": "0"}, **machine) != base
    assert probe_key({"TF_ENABLE_ONEDNN_OPTS": "0"}, **machine) != base
    assert probe_key({}, python="/other/python", **machine) != base
    (tmp_path / "dev" / "nvidia0").write_text("")  # a GPU appeared
    assert probe_key({}, **machine) != base
    (tmp_path / "dev" / "nvidia0").unlink()
    (tmp_path / "site" / "onnxruntime-1.22.0.dist-info").mkdir()  # a package installed
    assert probe_key({}, **machine) != base
    (tmp_path / "site" / "onnxruntime-1.22.0.dist-info").rmdir()
    assert probe_key({}, **machine) == base
    assert probe_key({}, **_machine(tmp_path, boot="boot-2\n")) != base  # rebooted


def test_a_changed_harness_source_changes_the_key(tmp_path: Path, monkeypatch: Any) -> None:
    src = tmp_path / "harness"
    src.mkdir()
    (src / "engines.py").write_text("A = 1\n")
    monkeypatch.setattr(probe_cache, "HARNESS", src)
    machine = _machine(tmp_path)
    base = probe_key({}, **machine)
    (src / "engines.py").write_text("A = 22\n")
    assert probe_key({}, **machine) != base


def test_no_boot_id_or_the_switch_off_means_no_cache(tmp_path: Path,
                                                     monkeypatch: Any) -> None:
    machine = _machine(tmp_path)
    machine["boot_id"] = tmp_path / "missing"
    assert probe_key({}, **machine) is None
    monkeypatch.setattr(probe_cache, "BOOT_ID", tmp_path / "missing")  # not Linux
    env = {"TFBENCH_CACHE_DIR": str(tmp_path / "cache")}
    probe = Probe({"tensorflow_version": "2.20.0"})
    cached_probe(probe, env, None)
    cached_probe(probe, env, None)
    assert probe.calls == 2 and not (tmp_path / "cache").exists()
    key = probe_key(env, **_machine(tmp_path))
    off = {**env, "TFBENCH_PROBE_CACHE": "0"}
    cached_probe(probe, off, key)
    cached_probe(probe, off, key)
    assert probe.calls == 4 and not (tmp_path / "cache").exists()


def test_a_failed_probe_is_not_stored_and_a_corrupt_entry_is_probed_again(
        tmp_path: Path) -> None:
    env = {"TFBENCH_CACHE_DIR": str(tmp_path / "cache")}
    key = "k" * 32
    failed = Probe({"tensorflow_error": "probe timed out after 120 s"})
    cached_probe(failed, env, key)
    cached_probe(failed, env, key)
    assert failed.calls == 2 and not (tmp_path / "cache" / "probe" / f"{key}.json").exists()
    entry = tmp_path / "cache" / "probe" / f"{key}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text('{"tensorflow_vers')
    good = Probe({"tensorflow_version": "2.20.0"})
    assert cached_probe(good, env, key)["tensorflow_version"] == "2.20.0"
    assert good.calls == 1 and cached_probe(good, env, key)["tensorflow_version"] == "2.20.0"
    assert good.calls == 1


def test_a_read_only_cache_folder_still_gives_the_answer(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the folder should be")
    env = {"TFBENCH_CACHE_DIR": str(tmp_path / "cache")}
    probe = Probe({"tensorflow_version": "2.20.0"})
    assert cached_probe(probe, env, "k" * 32)["tensorflow_version"] == "2.20.0"
