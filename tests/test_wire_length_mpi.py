"""The checked receive path under real mpiexec: a host whose rank sends a payload longer or shorter
than the server expects is rejected and counted (BAD_LENGTH), never written past the server's
buffer, and the run finishes. Today's failure (Gatherv into a buffer sized from the sender's
honest count) was an MPI_ERR_TRUNCATE abort or a segfault on rank 0.

One 4-rank job runs three configs: +1000 floats, −1 float, and the local threat model's default
(auto = checked) with an honest wire, which must match the gatherv path's trace exactly."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.validation import BAD_LENGTH
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi

BASE = """
[run]
name = "{name}"
seed = 4
rounds = 30
eval_every = 10
trace = "{dir}/{name}.h5"
progress = "none"
receive = "{receive}"

[clients]
n = 6
byzantine = 2

[task]
name = "synthetic"
features = 10
samples = 600
batch_size = 16

[method]
name = "sgd"
lr = 0.2

[aggregator]
name = "trimmed_mean"

[attack]
name = "sign_flip"
threat_model = "{threat}"

[debug]
wire_rank = {rank}
wire_extra = {extra}
"""


def _write(d: Path, name: str, *, receive: str, threat: str, rank: int, extra: int) -> str:
    path = d / f"{name}.toml"
    path.write_text(BASE.format(name=name, dir=d, receive=receive, threat=threat, rank=rank, extra=extra))
    return str(path)


def _tables(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r", locking=False) as f:
        assert f.attrs["status"] == "finished"
        return {k: f[k][...] for k in ("rounds", "messages", "final_params")}


def test_wrong_length_payloads_are_rejected_and_counted(tmp_path):
    configs = [
        _write(tmp_path, "longer", receive="auto", threat="local", rank=2, extra=1000),
        _write(tmp_path, "shorter", receive="checked", threat="local", rank=3, extra=-1),
        _write(tmp_path, "checked", receive="checked", threat="omniscient", rank=-1, extra=0),
        _write(tmp_path, "gatherv", receive="gatherv", threat="omniscient", rank=-1, extra=0),
    ]
    res = byzmpi(4, "run", *configs, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    # 6 clients on ranks 1..3: rank r hosts clients 2(r-1), 2(r-1)+1
    for name, rank in (("longer", 2), ("shorter", 3)):
        t = _tables(tmp_path / f"{name}.h5")
        msgs = t["messages"]
        mine = np.isin(msgs["client"], [2 * (rank - 1), 2 * (rank - 1) + 1])
        assert (msgs["rejected"][mine] == BAD_LENGTH).all(), name
        assert (msgs["rejected"][~mine] != BAD_LENGTH).all(), name
        assert t["rounds"]["rejected"].sum() == mine.sum(), name
        assert np.isfinite(t["final_params"]).all(), name
    # an honest wire: the checked path gives the same trajectory as the collective
    a, b = _tables(tmp_path / "checked.h5"), _tables(tmp_path / "gatherv.h5")
    assert np.array_equal(a["final_params"], b["final_params"])
    assert np.array_equal(a["messages"]["norm"], b["messages"]["norm"])
