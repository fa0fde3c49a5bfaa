"""Client states as columns in a checkpoint (byzmpi.client_columns): exact round trips for every
kind of field, the rank-0 path from packed bytes, the per-client fallback for differing layouts,
format-1 files, and refusals that name the field and the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from byzmpi.checkpoint import load_clients, write_checkpoint
from byzmpi.client_columns import ClientRows, layout, read_columns, write_columns
from byzmpi.statefile import StateFileError, pack, write_state


@dataclass
class Inner:
    steps: int
    scale: float
    flag: bool
    extra: Any = None


@dataclass
class State:
    w: torch.Tensor
    half: torch.Tensor
    wide: torch.Tensor
    inner: Inner
    table: dict[str, torch.Tensor]
    count: np.int32
    loose: torch.Tensor = field(metadata={"finite": False})


def make(c: int, d: int = 5) -> State:
    g = torch.Generator().manual_seed(c)
    return State(
        w=torch.randn(d, generator=g),
        half=torch.randn(2, 3, generator=g).to(torch.bfloat16),
        wide=torch.randn(d, generator=g, dtype=torch.float64),
        inner=Inner(steps=c * 7, scale=0.5 + c, flag=c % 2 == 0),
        table={"b": torch.arange(c, c + 3, dtype=torch.int64), "a": torch.full((1,), float(c))},
        count=np.int32(-c),
        loose=torch.tensor([float(c), float("inf")]),
    )


def template(d: int = 5) -> State:
    return State(
        w=torch.zeros(d),
        half=torch.zeros(2, 3, dtype=torch.bfloat16),
        wide=torch.zeros(d, dtype=torch.float64),
        inner=Inner(0, 0.0, False),
        table={"b": torch.zeros(3, dtype=torch.int64), "a": torch.zeros(1)},
        count=np.int32(0),
        loose=torch.zeros(2),
    )


def same(a: State, b: State) -> bool:
    """Field by field, bit for bit, and of the same Python types."""
    tensors = [
        (a.w, b.w),
        (a.half, b.half),
        (a.wide, b.wide),
        (a.table["a"], b.table["a"]),
        (a.table["b"], b.table["b"]),
    ]
    tensors.append((a.loose, b.loose))
    return (
        all(
            x.dtype == y.dtype
            and x.shape == y.shape
            and x.view(-1).view(torch.uint8).equal(y.view(-1).view(torch.uint8))
            for x, y in tensors
        )
        and a.inner == b.inner
        and type(b.inner.steps) is int
        and type(b.inner.scale) is float
        and type(b.inner.flag) is bool
        and type(b.count) is np.int32
        and a.count == b.count
    )


def write(path: Path, clients: Any) -> None:
    write_checkpoint(
        path,
        config_json="{}",
        fingerprint="x",
        rounds_done=0,
        trace_rows={"rounds": 0, "messages": 0, "eval": 0},
        complete=False,
        server={},
        aggregator={},
        clients=clients,
    )


N = 9


def test_every_kind_of_field_round_trips_exactly_and_a_subset_reads_only_its_rows(tmp_path: Path) -> None:
    states = {c: make(c) for c in range(N)}
    path = tmp_path / "ck.h5"
    write(path, states)
    with h5py.File(path, "r") as f:
        assert list(f["clients/ids"][...]) == list(range(N))
        assert f["clients/w"].shape == (N, 5) and f["clients/half"].dtype == np.int16
        assert f["clients/inner/steps"].dtype == np.int64 and f["clients/inner"].attrs["extra"] == "__none__"
        assert not [k for k in f["clients"] if k.isdigit()]  # no per-client groups
    loaded = load_clients(path, {c: template() for c in range(N)})
    assert all(same(states[c], loaded[c]) for c in range(N))
    part = load_clients(path, {c: template() for c in (1, 2, 3, 7)})  # two runs of rows
    assert sorted(part) == [1, 2, 3, 7] and all(same(states[c], part[c]) for c in part)


def test_rows_from_packed_bytes_in_rank_order_equal_rows_from_the_states() -> None:
    """Rank 0's path: the hosts' packed bytes, concatenated in host order, become the same rows."""
    states = {c: make(c) for c in range(N)}
    order = [4, 5, 6, 7, 8, 0, 1, 2, 3]
    raw = np.concatenate([pack(states[c]) for c in order])
    a = ClientRows.from_packed(np.array(order), layout(states[0]), raw)
    b = ClientRows.from_states(states)
    assert b is not None
    assert list(a.ids) == list(range(N)) and np.array_equal(a.rows, b.rows) and a.columns == b.columns
    with pytest.raises(ValueError, match="repeat"):
        ClientRows.from_packed(np.array([0, 0]), layout(states[0]), np.concatenate([pack(states[0])] * 2))
    with pytest.raises(ValueError, match="bytes"):
        ClientRows.from_packed(np.array([0, 1]), layout(states[0]), raw[:10])


def test_states_of_different_layouts_fall_back_to_one_group_per_client(tmp_path: Path) -> None:
    states = {0: make(0, d=5), 1: make(1, d=6)}
    assert ClientRows.from_states(states) is None
    path = tmp_path / "ck.h5"
    write(path, states)
    with h5py.File(path, "r") as f:
        assert sorted(f["clients"]) == ["0", "1"]
    loaded = load_clients(path, {0: template(5), 1: template(6)})
    assert same(states[0], loaded[0]) and same(states[1], loaded[1])


def test_a_format_1_checkpoint_is_still_read(tmp_path: Path) -> None:
    states = {c: make(c) for c in range(3)}
    path = tmp_path / "ck.h5"
    write(path, states)
    with h5py.File(path, "r+") as f:  # what byzmpi wrote before columns: one group per client
        f.attrs["format_version"] = 1
        del f["clients"]
        group = f.create_group("clients")
        for c, s in states.items():
            write_state(group.create_group(str(c)), s)
    loaded = load_clients(path, {c: template() for c in range(3)})
    assert all(same(states[c], loaded[c]) for c in range(3))


def _columns_file(tmp_path: Path) -> Path:
    path = tmp_path / "cols.h5"
    rows = ClientRows.from_states({c: make(c) for c in range(N)})
    assert rows is not None
    with h5py.File(path, "w") as f:
        write_columns(f.create_group("clients"), rows)
    return path


def _read(path: Path, clients: range | list[int] = range(N)) -> dict[int, Any]:
    with h5py.File(path, "r") as f:
        return read_columns(f["clients"], {c: template() for c in clients})


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda f: f["clients/w"].__setitem__(4, np.full(5, np.nan, "f4")), "clients/w", "client 4"),
        (lambda f: f["clients/wide"].__setitem__(8, np.full(5, -np.inf)), "clients/wide", "client 8"),
        (lambda f: f["clients/half"].__setitem__(2, np.full((2, 3), 0x7FC0, "i2")), "clients/half", "client 2"),
        (lambda f: f["clients/inner/scale"].__setitem__(3, np.nan), "clients/inner/scale", "client 3"),
        (lambda f: f["clients/inner/flag"].__setitem__(5, 2), "clients/inner/flag", "client 5"),
        (lambda f: f["clients/inner"].attrs.__setitem__("evil", 1), "clients/inner/evil", "not a field"),
        (lambda f: f["clients"].create_dataset("evil", data=np.zeros(N)), "clients/evil", "not a field"),
        (lambda f: f["clients/w"].attrs.__setitem__("torch_dtype", "torch.float64"), "clients/w", "holds"),
        (lambda f: f["clients/inner/steps"].attrs.__delitem__("py_type"), "clients/inner/steps", "py_type"),
        (lambda f: f["clients/ids"].__setitem__(0, -1), "clients/ids", "increasing"),
        (lambda f: f["clients/inner"].attrs.__setitem__("extra", 3.0), "clients/inner/extra", "None"),
    ],
)
def test_a_crafted_column_is_refused_naming_the_field_and_client(
    tmp_path: Path, mutate: Any, field: str, words: str
) -> None:
    path = _columns_file(tmp_path)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(StateFileError) as info:
        _read(path)
    assert info.value.field == field and words in str(info.value), str(info.value)


def test_a_bad_row_of_another_client_does_not_refuse_a_host_that_never_reads_it(tmp_path: Path) -> None:
    path = _columns_file(tmp_path)
    with h5py.File(path, "r+") as f:
        f["clients/w"][8] = np.full(5, np.nan, "f4")
    assert sorted(_read(path, [0, 1, 2])) == [0, 1, 2]
    with pytest.raises(StateFileError, match="client 8"):
        _read(path, [7, 8])


def test_a_field_declared_nonfinite_keeps_its_infinities(tmp_path: Path) -> None:
    loaded = _read(_columns_file(tmp_path), [3])
    assert loaded[3].loose[1].item() == float("inf")
