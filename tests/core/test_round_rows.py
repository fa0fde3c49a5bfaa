"""The server's per-round bookkeeping, in process: the spelled-out trace row equals the by-name
definition, the hosts' telemetry is validated like a payload, and the staging accounting counts
what each side copies between device and pinned host memory (checked here without a GPU, as a
pure function; on the CPU nothing is staged, which tests/test_round_path_mpi.py checks on a real run)."""

from __future__ import annotations

import numpy as np

from byzmpi.runner.server import (
    TELEMETRY,
    compute_seconds,
    fill_message_rows,
    host_times,
    message_rows,
    round_row,
    round_tuple,
    staged_bytes,
)
from byzmpi.runner.step import RoundRecord
from byzmpi.trace import MESSAGE_DTYPE, ROUND_DTYPE


def record(seed: int) -> RoundRecord:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 6))
    return RoundRecord(
        round=int(rng.integers(0, 1000)),
        full=bool(rng.integers(0, 2)),
        sampled=m,
        byzantine=int(rng.integers(0, m + 1)),
        rejected=int(rng.integers(0, m + 1)),
        skipped=bool(rng.integers(0, 2)),
        aggregate_norm=float(rng.normal()),
        honest_mean_norm=float(rng.normal()),
        dist_honest_mean=float(rng.normal()),
        update_norm=float(rng.normal()),
        clip_radius=float("nan"),
        clipped=int(rng.integers(0, m + 1)),
        bytes_up=int(rng.integers(0, 10**9)),
        message_client=rng.permutation(10)[:m],
        message_byzantine=rng.integers(0, 2, m).astype(bool),
        message_rejected=rng.integers(0, 4, m).astype(np.uint8),
        message_norm=rng.normal(size=m),
        message_dist_honest_mean=rng.normal(size=m),
        message_weight=rng.random(m),
        message_clipped=np.where(rng.random(m) < 0.5, np.nan, 1.0).astype(np.float32),
        message_bytes=int(rng.integers(4, 4000)),
    )


def values(seed: int) -> dict:
    rng = np.random.default_rng(seed + 100)
    v = {name: float(rng.random()) for name in ROUND_DTYPE.names if name.startswith("t_")}
    v.update(skipped=int(rng.integers(0, 4)), bytes_down=int(rng.integers(0, 10**6)))
    v.update(staged_d2h=int(rng.integers(0, 10**6)), staged_h2d=int(rng.integers(0, 10**6)))
    return v


def test_spelled_out_round_row_equals_the_by_name_row() -> None:
    for seed in range(20):
        rec, vals = record(seed), values(seed)
        a, b = np.zeros(1, ROUND_DTYPE), np.zeros(1, ROUND_DTYPE)
        a[0], b[0] = round_tuple(rec, vals), round_row(rec, vals)
        assert a.tobytes() == b.tobytes()
        # the by-name row really takes each column from its source
        assert a["bytes_down"][0] == vals["bytes_down"] and a["bytes_up"][0] == rec.bytes_up
        assert a["staged_h2d"][0] == vals["staged_h2d"] and a["round"][0] == rec.round


def test_message_rows_filled_in_place_equal_the_by_name_rows() -> None:
    for seed in range(10):
        rec = record(seed)
        out = np.zeros(rec.sampled, MESSAGE_DTYPE)
        fill_message_rows(out, rec)
        assert out.tobytes() == message_rows(rec).tobytes()


def test_host_times_without_staging_are_compute_seconds() -> None:
    waited = 0.05
    for reports in ([0.01, 0.02], [np.nan, 0.02, 1e300, -1.0], [np.inf], [], [0.049, 0.051]):
        c = np.asarray(reports, dtype=np.float64)
        compute, stage, refused = host_times(c, np.zeros_like(c), waited)
        assert (compute, refused) == compute_seconds(np.concatenate([[0.0], c]), waited) and stage == 0.0


def test_host_times_pick_the_slowest_host_by_compute_plus_staging() -> None:
    c = np.array([0.010, 0.004, 0.020])
    st = np.array([0.001, 0.020, 0.0])
    # host 1 is the slowest overall (0.024), though host 2 computes longest
    assert host_times(c, st, waited=0.05) == (0.004, 0.020, 0)
    # a pair is refused when either part is not a time, or their sum exceeds the wait
    assert host_times(np.array([0.01, 0.01]), np.array([-0.001, 0.045]), waited=0.05) == (0.0, 0.0, 2)
    assert host_times(np.array([0.01, np.nan]), np.array([0.002, 0.0]), waited=0.05) == (0.01, 0.002, 1)


def test_staged_bytes_count_each_side_copy() -> None:
    d, stride = 1000, 1000 + TELEMETRY
    # nobody stages: nothing counted
    assert staged_bytes(
        server=False, downlink=d, gathered=3 * stride, host_flags=np.zeros(2), host_rows=np.array([1, 2]), stride=stride
    ) == (0, 0)
    # the server stages: downlink out (d2h), the whole gather in (h2d)
    assert staged_bytes(
        server=True, downlink=d, gathered=3 * stride, host_flags=np.zeros(2), host_rows=np.array([1, 2]), stride=stride
    ) == (4 * d, 4 * 3 * stride)
    # the second host stages too: the downlink in, its two rows out
    assert staged_bytes(
        server=True,
        downlink=d,
        gathered=3 * stride,
        host_flags=np.array([0.0, 1.0]),
        host_rows=np.array([1, 2]),
        stride=stride,
    ) == (4 * (d + 2 * stride), 4 * (3 * stride + d))
