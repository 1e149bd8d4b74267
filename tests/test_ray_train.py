"""How a Ray Train multiworker cell's replies become its blocks (no Ray needed here; the
real cluster runs are in tests/test_fleet.py)."""

from __future__ import annotations

from typing import Any

from harness.orchestrator import BlockOutcome
from harness.ray_train import first_failure, merge_blocks


def _result(digest: str, steps: int = 3) -> dict[str, Any]:
    return {"status": "ok", "steps": [{}] * steps, "replica_weights_sha1": [digest],
            "engine_detail": {"initial_weights_sha1": "init"}, "host_rss_peak_bytes": 10}


def _ok(digest: str, host: str, steps: int = 3) -> BlockOutcome:
    return BlockOutcome("ok", "", _result(digest, steps), wall_s=1.0, host=host, node_id=host)


def test_first_failure_names_the_error_or_the_failed_block() -> None:
    assert first_failure({"blocks": [{"status": "ok"}]}) == ""
    assert first_failure({"error": "Ray Train worker 1 raised X"}) == "Ray Train worker 1 raised X"
    assert first_failure({"blocks": [{"status": "ok"}, {"status": "oom", "reason": "OOM"}]}) \
        == "oom: OOM"


def test_replicas_in_sync_give_the_chiefs_block_with_every_digest() -> None:
    (block,) = merge_blocks([[_ok("w", "a")], [_ok("w", "b")]], ["a", "b"])
    assert block.status == "ok" and block.host == "a"  # the chief's (rank 0)
    detail = block.result["engine_detail"]
    assert detail["replica_weights_sha1"] == ["w", "w"]
    assert detail["launcher"] == "ray-train TensorflowTrainer"
    assert detail["worker_hosts"] == ["a", "b"] and detail["worker_steps"] == [3, 3]


def test_a_failed_rank_fails_the_block_with_which_worker_and_where() -> None:
    lost = BlockOutcome("failed", "worker killed by SIGKILL; no out-of-memory evidence",
                        host="b", node_id="b")
    (block,) = merge_blocks([[_ok("w", "a")], [lost]], ["a", "b"])
    assert block.status == "failed" and block.result == {}
    assert block.reason == ("multiworker worker 1 on b: worker killed by SIGKILL; "
                            "no out-of-memory evidence")


def test_the_killed_rank_is_the_cause_not_the_chief_that_lost_its_peer() -> None:
    """Worker 1 SIGKILLed: the chief's collective then fails with UnavailableError; the
    block names worker 1 (the cause), whichever rank's failure comes first."""
    peer_lost = BlockOutcome("failed", "UnavailableError: Graph execution error: Detected at "
                             "node sgd/CollectiveReduceV2", host="a", node_id="a")
    killed = BlockOutcome("failed", "worker killed by SIGKILL; no out-of-memory evidence",
                          host="b", node_id="b")
    (block,) = merge_blocks([[peer_lost], [killed]], ["a", "b"])
    assert block.status == "failed"
    assert block.reason == ("multiworker worker 1 on b: worker killed by SIGKILL; no "
                            "out-of-memory evidence (worker 0 then lost its collective peer)")


def test_replicas_that_disagree_fail_the_block() -> None:
    (block,) = merge_blocks([[_ok("w", "a")], [_ok("v", "b")]], ["a", "b"])
    assert block.status == "failed" and "different weights" in block.reason
    uneven = merge_blocks([[_ok("w", "a", 3)], [_ok("w", "b", 4)]], ["a", "b"])
    assert uneven[0].status == "failed" and "different step counts" in uneven[0].reason


def test_blocks_are_merged_block_by_block() -> None:
    blocks = merge_blocks([[_ok("w", "a"), _ok("x", "a")], [_ok("w", "b"), _ok("y", "b")]],
                          ["a", "b"])
    assert [b.status for b in blocks] == ["ok", "failed"]
