"""Crafted checkpoints (issue 13, item 6): every one is refused with a one-line SetupError naming
the field, before any rank loads it; and stale temp files of killed writes are cleaned (item 11).

The battery is in-process and needs no MPI: a real checkpoint is written with
:func:`write_checkpoint` for a small sgd-with-momentum config, then one thing is broken with h5py,
and the resume path (``find_resume``, then what the server and the hosts load) must refuse it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from byzmpi.checkpoint import load_clients, load_server, read_header, write_checkpoint
from byzmpi.config import Config, parse_config
from byzmpi.errors import SetupError
from byzmpi.runner.setup import find_resume, setup
from byzmpi.trace import ROUND_DTYPE, TraceWriter

D = 6  # 5 features + bias
N = 4
ROUNDS_DONE = 4


def raw_config(folder: Path, rounds: int = 10, resume: str = "auto") -> dict[str, Any]:
    return {
        "run": {"name": "hx", "seed": 1, "rounds": rounds, "trace": str(folder / "hx.h5")},
        "clients": {"n": N, "byzantine": 1, "per_round": 3},
        "task": {"name": "synthetic", "features": 5, "samples": 200},
        "method": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "aggregator": {"name": "trimmed_mean", "f": 1},
        "checkpoint": {"path": str(folder / "hx.ckpt.h5"), "resume": resume},
    }


@dataclass
class Templates:
    server: Any
    clients: dict[int, Any]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    s = setup(parse_config(raw_config(tmp_path_factory.mktemp("tpl"))), 3, 0)
    return Templates(s.method.init_server(s.x0), {c: s.method.init_client(c) for c in range(N)})


def write_good(cfg: Config, t: Templates, rounds_done: int = ROUNDS_DONE) -> Path:
    """A valid trace and checkpoint for ``cfg`` (non-trivial values everywhere)."""
    w = TraceWriter(cfg.trace_path, {"config": "{}"}, D)
    w.append("rounds", np.zeros(rounds_done, ROUND_DTYPE))
    w.close("running", None, rounds_done)
    gen = torch.Generator().manual_seed(0)
    server = type(t.server)(
        x=torch.randn(D, generator=gen),
        x0=torch.zeros(D),
        g=torch.randn(D, generator=gen),
        step_norm=0.25,
        started=True,
    )
    clients = {c: type(s)(momentum=torch.randn(D, generator=gen)) for c, s in t.clients.items()}
    write_checkpoint(
        cfg.checkpoint_path,
        config_json=cfg.to_json(),
        fingerprint=cfg.fingerprint(),
        rounds_done=rounds_done,
        trace_rows={"rounds": rounds_done, "messages": 0, "eval": 0},
        complete=False,
        server=server,
        aggregator={"centre": torch.randn(D, generator=gen)},
        clients=clients,
    )
    return cfg.checkpoint_path


def resume(cfg: Config, t: Templates) -> Any:
    """What a run does with the checkpoint: decide to resume, then load the server's part (rank 0)
    and every client's (the hosts)."""
    header = find_resume(cfg)
    if header is None:
        return None
    server, aggregator = load_server(header.path, t.server)
    return header, server, aggregator, load_clients(header.path, dict(t.clients))


# --- the crafted cases: each breaks one thing in a valid checkpoint --------------------------


def _other_h5(path: Path) -> Path:
    other = path.with_name("other.h5")
    with h5py.File(other, "w") as g:
        g["data"] = np.arange(D, dtype=np.float32)
    return other


def _replace(name: str, make: Callable[[h5py.File, str], Any]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[name]
            make(f, name)

    return mutate


def _dataset(data: Any = None, *, torch_dtype: str | None = "torch.float32", **kw: Any) -> Callable:
    def make(f: h5py.File, name: str) -> None:
        ds = f.create_dataset(name, data=data, **kw)
        if torch_dtype is not None:
            ds.attrs["torch_dtype"] = torch_dtype

    return make


def _attr(obj: str, name: str, value: Any) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f[obj].attrs[name] = value

    return mutate


def _del_attr(obj: str, name: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[obj].attrs[name]

    return mutate


def _external_storage(path: Path) -> None:
    secret = path.with_name("secret.bin")
    secret.write_bytes(np.arange(D, dtype=np.float32).tobytes())
    with h5py.File(path, "r+") as f:
        del f["server/x"]
        ds = f.create_dataset("server/x", shape=(D,), dtype="f4", external=[(str(secret), 0, 4 * D)])
        ds.attrs["torch_dtype"] = "torch.float32"


def _virtual(path: Path) -> None:
    other = _other_h5(path)
    with h5py.File(path, "r+") as f:
        del f["server/x"]
        layout = h5py.VirtualLayout(shape=(D,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "data", shape=(D,))
        f.create_virtual_dataset("server/x", layout).attrs["torch_dtype"] = "torch.float32"


def _external_link(name: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        other = _other_h5(path)
        with h5py.File(path, "r+") as f:
            if name in f:
                del f[name]
            f[name] = h5py.ExternalLink(str(other), "/data")

    return mutate


def _soft_link(name: str, target: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[name]
            f[name] = h5py.SoftLink(target)

    return mutate


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))


def _huge(path: Path) -> None:
    """A 10^8-element server model: must be refused from its shape, not after reading 400 MB."""
    with h5py.File(path, "r+") as f:
        del f["server/x"]
        f.create_dataset("server/x", shape=(10**8,), dtype="f4").attrs["torch_dtype"] = "torch.float32"


def _twice(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["server"].attrs["x"] = 1.0


def _extra_field(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["server"].attrs["evil"] = 1


def _extra_root(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.create_group("payload")


def _missing(name: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[name]

    return mutate


def _as_group(name: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[name]
            f.create_group(name)

    return mutate


def _set_row(name: str, row: int, values: np.ndarray) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f[name][row] = values

    return mutate


def _add_group(path: Path, name: str) -> None:
    with h5py.File(path, "r+") as f:
        f.create_group(name)


NAN6 = np.array([0, 1, np.nan, 3, 4, 5], dtype=np.float32)
INF6 = np.array([0, 1, np.inf, 3, 4, 5], dtype=np.float32)

#: name -> (mutation, what the one-line refusal must name)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # header counters and flags
    "rounds_done negative": (_attr("/", "rounds_done", -1), "rounds_done"),
    "rounds_done float": (_attr("/", "rounds_done", 2.5), "rounds_done"),
    "rounds_done boolean": (_attr("/", "rounds_done", True), "rounds_done"),
    "rounds_done array": (_attr("/", "rounds_done", np.array([4, 4])), "rounds_done"),
    "rounds_done missing": (_del_attr("/", "rounds_done"), "rounds_done"),
    "format_version string": (_attr("/", "format_version", "1"), "format_version"),
    "complete integer": (_attr("/", "complete", 1), "complete"),
    "complete string": (_attr("/", "complete", "yes"), "complete"),
    "trace_rows not JSON": (_attr("/", "trace_rows", "{rounds: 4"), "trace_rows"),
    "trace_rows negative": (_attr("/", "trace_rows", '{"rounds": 4, "messages": -5, "eval": 0}'), "trace_rows"),
    "trace_rows float": (_attr("/", "trace_rows", '{"rounds": 4, "messages": 0.5, "eval": 0}'), "trace_rows"),
    "trace_rows list": (_attr("/", "trace_rows", "[4, 0, 0]"), "trace_rows"),
    "trace_rows missing table": (_attr("/", "trace_rows", '{"rounds": 4, "eval": 0}'), "trace_rows"),
    "trace_rows rounds != rounds_done": (
        _attr("/", "trace_rows", '{"rounds": 2, "messages": 0, "eval": 0}'),
        "trace_rows.rounds",
    ),
    "fingerprint not a string": (_attr("/", "config_fingerprint", 7), "config_fingerprint"),
    # structure: nothing may read outside the file
    "external storage": (_external_storage, "server/x"),
    "virtual dataset": (_virtual, "server/x"),
    "external link to a dataset": (_external_link("server/x"), "server/x"),
    "external link to a group": (_external_link("aggregator"), "aggregator"),
    "external link where no rank reads": (_external_link("clients/99"), "clients/99"),
    "soft link": (_soft_link("server/x", "/server/x0"), "server/x"),
    "gzip-filtered dataset": (_replace("server/x", _dataset(np.zeros(D, "f4"), compression="gzip")), "server/x"),
    "extra root group": (_extra_root, "payload"),
    "server missing": (_missing("server"), "server"),
    "server is a dataset": (_replace("server", _dataset(np.zeros(D, "f4"))), "server"),
    # shapes and dtypes, before reading
    "model too long": (_replace("server/x", _dataset(np.zeros(D + 1, "f4"))), "server/x"),
    "model 10^8 elements": (_huge, "server/x"),
    "model 2-d": (_replace("server/x", _dataset(np.zeros((D, 1), "f4"))), "server/x"),
    "model scalar": (_replace("server/x", _dataset(np.float32(1))), "server/x"),
    "model float64": (_replace("server/x", _dataset(np.zeros(D, "f8"))), "server/x"),
    "model big-endian": (_replace("server/x", _dataset(np.zeros(D, ">f4"))), "server/x"),
    "model int32": (_replace("server/x", _dataset(np.zeros(D, "i4"))), "server/x"),
    "model strings": (_replace("server/x", _dataset(np.array([b"abc"] * D))), "server/x"),
    "model torch_dtype lies": (
        _replace("server/x", _dataset(np.zeros(D, "f4"), torch_dtype="torch.int32")),
        "server/x",
    ),
    "model without torch_dtype": (_replace("server/x", _dataset(np.zeros(D, "f4"), torch_dtype=None)), "server/x"),
    "model is a group": (_as_group("server/x"), "server/x"),
    "model missing": (_missing("server/x0"), "server/x0"),
    "model stored twice": (_twice, "server/x"),
    "extra server field": (_extra_field, "server/evil"),
    "client momentum wrong shape": (
        _replace("clients/momentum", _dataset(np.zeros((N, D - 1), "f4"))),
        "clients/momentum",
    ),
    "client momentum one row short": (
        _replace("clients/momentum", _dataset(np.zeros((N - 1, D), "f4"))),
        "clients/momentum",
    ),
    "client momentum None": (
        _replace("clients/momentum", lambda f, n: f["clients"].attrs.create("momentum", "__none__")),
        "clients/momentum",
    ),
    "client missing": (
        _replace("clients/ids", _dataset(np.arange(N - 1, dtype="i8"), torch_dtype=None)),
        "clients/ids",
    ),
    "client ids repeat": (
        _replace("clients/ids", _dataset(np.array([0, 1, 1, 3], "i8"), torch_dtype=None)),
        "clients/ids",
    ),
    "client ids float": (_replace("clients/ids", _dataset(np.arange(N, dtype="f8"), torch_dtype=None)), "clients/ids"),
    "client ids missing": (_missing("clients/ids"), "clients"),
    "client state as groups and columns": (lambda p: _add_group(p, "clients/3"), "clients/3"),
    "aggregator state wrong shape": (
        _replace("aggregator/centre", _dataset(np.zeros(D * 1000, "f4"))),
        "aggregator/centre",
    ),
    "aggregator state int": (
        _replace("aggregator/centre", _dataset(np.zeros(D, "i8"), torch_dtype="torch.int64")),
        "aggregator/centre",
    ),
    "aggregator attribute": (_attr("aggregator", "evil", 3.0), "aggregator/evil"),
    # values
    "model NaN": (_replace("server/x", _dataset(NAN6)), "server/x"),
    "model Inf": (_replace("server/g", _dataset(INF6)), "server/g"),
    "client momentum NaN": (_set_row("clients/momentum", 0, NAN6), "clients/momentum"),
    "client momentum Inf": (_set_row("clients/momentum", 3, INF6), "clients/momentum"),
    "aggregator state Inf": (_replace("aggregator/centre", _dataset(INF6)), "aggregator/centre"),
    "step_norm Inf": (_attr("server", "step_norm", np.inf), "server/step_norm"),
    "step_norm string": (_attr("server", "step_norm", "0.5"), "server/step_norm"),
    "started integer flag": (_attr("server", "started", 1), "server/started"),
    "started string flag": (_attr("server", "started", "true"), "server/started"),
    # not a checkpoint at all
    "garbage bytes": (_garbage, "checkpoint"),
    "empty file": (lambda p: p.write_bytes(b""), "checkpoint"),
}


def one_line_refusal(exc: BaseException) -> str:
    line = str(exc)
    assert "\n" not in line, line
    assert isinstance(exc, SetupError) and exc.exit_code == 2
    return line


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_checkpoint_is_refused_with_one_line(case: str, tmp_path: Path, templates: Templates) -> None:
    mutate, field = CASES[case]
    cfg = parse_config(raw_config(tmp_path))
    mutate(write_good(cfg, templates))
    with pytest.raises(SetupError) as info:
        resume(cfg, templates)
    line = one_line_refusal(info.value)
    assert field in line and str(cfg.checkpoint_path) in line, line


def test_refused_before_reading_the_data(tmp_path: Path, templates: Templates, monkeypatch) -> None:
    """Shape and dtype are checked from the metadata: no dataset is read when they are wrong."""
    cfg = parse_config(raw_config(tmp_path))
    _replace("server/x", _dataset(np.zeros(D + 1, "f4")))(write_good(cfg, templates))
    read: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, key: Any) -> Any:
        read.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with pytest.raises(SetupError, match="server/x"):
        resume(cfg, templates)
    assert "/server/x" not in read


def test_the_valid_checkpoint_round_trips(tmp_path: Path, templates: Templates) -> None:
    cfg = parse_config(raw_config(tmp_path))
    write_good(cfg, templates)
    header, server, aggregator, clients = resume(cfg, templates)
    assert header.rounds_done == ROUNDS_DONE and not header.complete
    assert header.trace_rows == {"rounds": ROUNDS_DONE, "messages": 0, "eval": 0}
    assert server.step_norm == 0.25 and type(server.step_norm) is float
    assert server.started is True
    assert server.x.shape == (D,) and torch.isfinite(server.x).all() and server.x.abs().sum() > 0
    assert set(aggregator) == {"centre"} and aggregator["centre"].shape == (D,)
    assert set(clients) == set(range(N)) and all(c.momentum.shape == (D,) for c in clients.values())


def test_setup_refuses_a_bad_client_state_on_its_host_rank(tmp_path: Path, templates: Templates) -> None:
    """The check runs in setup(), on the rank that will load the part, before any collective:
    rank 0 checks the server's part, a host only its own clients."""
    cfg = parse_config(raw_config(tmp_path))
    _set_row("clients/momentum", 0, NAN6)(write_good(cfg, templates))
    rank_of_client_0 = 1  # 4 clients on ranks 1..2: clients 0 and 1 on rank 1
    setup(cfg, 3, 0)  # the server's part is fine
    setup(cfg, 3, 2)  # clients 2 and 3 are fine
    with pytest.raises(SetupError) as info:
        setup(cfg, 3, rank_of_client_0)
    line = one_line_refusal(info.value)
    assert "clients/momentum" in line and "client 0" in line, line


def test_auto_resume_beyond_run_rounds_is_an_error_not_a_restart(tmp_path: Path, templates: Templates) -> None:
    """rounds_done > run.rounds used to make resume = "auto" start from scratch over the trace."""
    cfg = parse_config(raw_config(tmp_path, rounds=10))
    write_good(cfg, templates, rounds_done=10)
    shorter = parse_config(raw_config(tmp_path, rounds=6))
    assert shorter.fingerprint() == cfg.fingerprint()
    with pytest.raises(SetupError) as info:
        find_resume(shorter)
    line = one_line_refusal(info.value)
    assert "run.rounds" in line and "10" in line
    assert find_resume(cfg) is None  # exactly finished: auto starts again, as documented
    assert find_resume(parse_config(raw_config(tmp_path, rounds=12))).rounds_done == 10


def test_a_trace_shorter_than_the_checkpoint_is_refused(tmp_path: Path, templates: Templates) -> None:
    cfg = parse_config(raw_config(tmp_path))
    write_good(cfg, templates)
    with h5py.File(cfg.trace_path, "r+") as f:
        f["rounds"].resize((ROUNDS_DONE - 1,))
    with pytest.raises(SetupError) as info:
        find_resume(cfg)
    assert "trace_rows.rounds" in one_line_refusal(info.value)


def test_a_directory_at_the_checkpoint_path(tmp_path: Path) -> None:
    (tmp_path / "ck.h5").mkdir()
    with pytest.raises(SetupError) as info:
        read_header(tmp_path / "ck.h5")
    one_line_refusal(info.value)


# --- item 11: temp files of killed writes ------------------------------------------------------


def test_stale_temp_files_of_this_checkpoint_are_removed_at_the_next_write(
    tmp_path: Path, templates: Templates
) -> None:
    cfg = parse_config(raw_config(tmp_path))
    path = cfg.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = []
    for _ in range(2):  # what a write killed between mkstemp and os.replace leaves
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.write(fd, b"partial")
        os.close(fd)
        stale.append(Path(name))
    keep = [
        tmp_path / ".other.ckpt.h5.abcdefgh.tmp",  # another checkpoint's temp file
        tmp_path / f".{path.name}.abc.tmp",  # not tempfile's 8-character name
        tmp_path / f"{path.name}.abcdefgh.tmp",  # no leading dot
        tmp_path / "notes.txt",
    ]
    for p in keep:
        p.write_text("keep")
    link = tmp_path / f".{path.name}.zzzzzzzz.tmp"
    link.symlink_to(tmp_path / "notes.txt")  # a link is not ours to remove

    write_good(cfg, templates)

    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep) and link.is_symlink()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{path.name}.") and p.name.endswith(".tmp")]
    assert sorted(left) == sorted([link.name, f".{path.name}.abc.tmp"])
    assert read_header(path).rounds_done == ROUNDS_DONE


def test_a_dasha_checkpoint_with_overflowed_stored_messages_resumes(tmp_path: Path) -> None:
    """DASHA keeps each client's g_i on the server; a Byzantine client can drive its row to inf
    (the method leaves it out of the aggregation), and that state must still resume exactly."""
    raw = raw_config(tmp_path)
    raw["method"] = {"name": "dasha_page", "lr": 0.1, "p": 0.1}
    raw["compressor"] = {"name": "randk", "ratio": 0.5}
    raw["clients"] = {"n": N, "byzantine": 1}
    cfg = parse_config(raw)
    s = setup(cfg, 3, 0)
    w = TraceWriter(cfg.trace_path, {"config": "{}"}, D)
    w.append("rounds", np.zeros(ROUNDS_DONE, ROUND_DTYPE))
    w.close("running", None, ROUNDS_DONE)
    server = s.method.init_server(s.x0)
    server.g_clients[1] = float("inf")
    server.g_clients[2, 3] = float("nan")
    clients = {c: s.method.init_client(c) for c in range(N)}
    write_checkpoint(
        cfg.checkpoint_path,
        config_json=cfg.to_json(),
        fingerprint=cfg.fingerprint(),
        rounds_done=ROUNDS_DONE,
        trace_rows={"rounds": ROUNDS_DONE, "messages": 0, "eval": 0},
        complete=False,
        server=server,
        aggregator={},
        clients=clients,
    )
    header = find_resume(cfg)
    loaded, _ = load_server(header.path, s.method.init_server(s.x0))
    assert loaded.g_clients.numpy().tobytes() == server.g_clients.numpy().tobytes()
    _replace("server/x", _dataset(NAN6))(cfg.checkpoint_path)  # the model itself must still be finite
    with pytest.raises(SetupError, match="server/x: holds non-finite"):
        load_server(header.path, s.method.init_server(s.x0))
