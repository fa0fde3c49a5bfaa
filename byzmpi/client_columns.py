"""Client states in a checkpoint as columns: one dataset per state field, one row per client.

Written one HDF5 group per client, a checkpoint of n clients holds n groups and n datasets per
tensor field, and HDF5's per-object cost dominates: 10,000 clients took seconds to write and again
to read (docs/performance.md, "Other measured costs"). When every client's state has the same
*layout* (the same fields, tensor shapes and dtypes, scalar types and ``None`` fields, as for every
built-in method), the states are stored as columns instead (docs/trace.md, "The checkpoint"):

    clients/ids               int64 (n,): the client ids, strictly increasing
    clients/<field>           (n, *shape): row k is the field's tensor for client ids[k], with the
                              tensor's ``torch_dtype`` attribute (bfloat16 as its int16 bits)
    clients/<field>           (n,) for a Python or numpy scalar field, in the dtype it travels in
                              between ranks (bool uint8 0/1, int int64, float float64, a numpy
                              scalar its own), with a ``py_type`` attribute (its type's name)
    clients.attrs[<field>]    ``"__none__"`` for a ``None`` field (None for every client)
    clients/<sub>/...         a nested dataclass or dict, as a subgroup (dict keys sorted)

Rank 0 writes the columns straight from the packed bytes the hosts send
(:func:`byzmpi.statefile.pack`: the same fields in the same order), without building a state
object per client. A host reads only its own clients' rows, one read per run of consecutive rows.

Reading treats the file as hostile, as :func:`byzmpi.statefile.read_state` does: hard links and
plain contiguous datasets only (checked by the caller for the whole file, and per node here), no
field the template lacks, every dtype and shape (n rows) checked before data is read, ``ids``
strictly increasing, every requested client present, floats finite (unless the field is declared
``field(metadata={"finite": False})``), booleans 0 or 1. A refusal is a
:class:`~byzmpi.statefile.StateFileError` naming the field (and the client where one row is at
fault).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from .statefile import (
    NONE_MARK,
    StateFileError,
    _attr_value,
    _children,
    _expected_dtype,
    _may_be_nonfinite,
    _scalar_dtype,
    check_node,
    pack,
)

_SCALARS = (bool, int, float, np.integer, np.floating, np.bool_)


@dataclass(frozen=True)
class Column:
    """One node of a state's layout: a tensor or scalar field (``nbytes`` of packed bytes), a
    ``None`` field, or a nested state (``group``); ``path`` from the state's root."""

    path: tuple[str, ...]
    kind: str  # "tensor" | "scalar" | "none" | "group"
    dtype: np.dtype | None = None
    shape: tuple[int, ...] = ()
    tag: str = ""  # the torch dtype of a tensor, the type name of a scalar
    nbytes: int = 0


def layout(state: Any) -> tuple[Column, ...]:
    """The columns of a state, in :func:`~byzmpi.statefile.pack` order (``None`` fields and
    groups take no bytes). Raises TypeError for a field pack cannot carry (strings, arrays)."""
    out: list[Column] = []

    def walk(obj: Any, prefix: tuple[str, ...]) -> None:
        for name, value in _children(obj):
            path = (*prefix, name)
            if isinstance(value, Tensor):
                nbytes = value.numel() * value.element_size()
                out.append(Column(path, "tensor", _expected_dtype(value), tuple(value.shape), str(value.dtype), nbytes))
            elif value is None:
                out.append(Column(path, "none"))
            elif isinstance(value, _SCALARS):
                dtype = _scalar_dtype(value)
                out.append(Column(path, "scalar", dtype, (), type(value).__name__, dtype.itemsize))
            elif (dataclasses.is_dataclass(value) and not isinstance(value, type)) or isinstance(value, dict):
                out.append(Column(path, "group"))
                walk(value, path)
            else:
                raise TypeError(f"cannot store field {'/'.join(path)!r} of type {type(value).__name__} as a column")

    walk(state, ())
    return tuple(out)


@dataclass(frozen=True)
class ClientRows:
    """The packed states of n clients that share one layout: ``rows[k]`` = ``pack`` of client
    ``ids[k]``'s state; ids strictly increasing."""

    ids: np.ndarray
    columns: tuple[Column, ...]
    rows: np.ndarray  # uint8 (n, packed bytes per client)

    @classmethod
    def from_states(cls, states: dict[int, Any]) -> ClientRows | None:
        """The states as rows, or None when their layouts differ (or a state cannot be packed)."""
        ids = sorted(states)
        try:
            layouts = {layout(states[c]) for c in ids}
        except TypeError:
            return None
        if len(layouts) != 1:
            return None
        (columns,) = layouts
        width = sum(c.nbytes for c in columns)
        rows = np.empty((len(ids), width), dtype=np.uint8)
        for k, c in enumerate(ids):
            rows[k] = pack(states[c])
        return cls(np.asarray(ids, dtype=np.int64), columns, rows)

    @classmethod
    def from_packed(cls, ids: np.ndarray, columns: tuple[Column, ...], raw: np.ndarray) -> ClientRows:
        """Rows from the concatenated packed states of clients ``ids`` (in that order, any order)."""
        ids = np.asarray(ids, dtype=np.int64)
        width = sum(c.nbytes for c in columns)
        if raw.size != ids.size * width:
            raise ValueError(f"client state bytes: expected {ids.size} x {width}, got {raw.size}")
        rows = np.ascontiguousarray(raw, dtype=np.uint8).reshape(ids.size, width)
        order = np.argsort(ids, kind="stable")
        if not np.array_equal(order, np.arange(ids.size)):
            ids, rows = ids[order], rows[order]
        if ids.size > 1 and not bool((np.diff(ids) > 0).all()):
            raise ValueError("client ids repeat")
        return cls(ids, columns, rows)


def write_columns(group: h5py.Group, clients: ClientRows) -> None:
    """Write the clients' states into ``group`` as columns (module docstring)."""
    n = clients.ids.size
    group.create_dataset("ids", data=clients.ids)
    offset = 0
    for col in clients.columns:
        parent = group
        for name in col.path[:-1]:
            parent = parent[name]
        name = col.path[-1]
        if col.kind == "group":
            parent.create_group(name)
        elif col.kind == "none":
            parent.attrs[name] = NONE_MARK
        else:
            assert col.dtype is not None
            block = np.ascontiguousarray(clients.rows[:, offset : offset + col.nbytes])
            offset += col.nbytes
            data = (
                block.view(col.dtype).reshape((n, *col.shape)) if col.nbytes else np.empty((n, *col.shape), col.dtype)
            )
            ds = parent.create_dataset(name, data=data)
            ds.attrs["torch_dtype" if col.kind == "tensor" else "py_type"] = col.tag


def _field(path: tuple[str, ...], root: str) -> str:
    return "/".join((root, *path)) if path else root


def _check_names(group: h5py.Group, columns: tuple[Column, ...], root: str) -> None:
    """No attribute or node the layout lacks, at any level (stops at the first unknown name)."""
    expected: dict[tuple[str, ...], set[str]] = {(): {"ids"}}
    for col in columns:
        expected.setdefault(col.path[:-1], set()).add(col.path[-1])
        if col.kind == "group":
            expected.setdefault(col.path, set())
    for prefix, names in expected.items():
        node = group
        for name in prefix:
            node = node[name]
        for keys in (node.attrs.keys(), node.keys()):
            for key in keys:
                if key not in names:
                    raise StateFileError(_field((*prefix, key), root), "is not a field of this client state")


def _ids(group: h5py.Group, root: str) -> np.ndarray:
    field = _field(("ids",), root)
    if "ids" not in group:
        raise StateFileError(field, "is missing")
    node = check_node(group, "ids")
    if not isinstance(node, h5py.Dataset) or node.dtype != np.dtype(np.int64) or len(node.shape) != 1:
        raise StateFileError(field, "must be a 1-d int64 dataset of client ids")
    ids = np.asarray(node[...])
    if ids.size and (ids[0] < 0 or (ids.size > 1 and not bool((np.diff(ids) > 0).all()))):
        raise StateFileError(field, "must hold non-negative client ids in strictly increasing order")
    return ids


def _node(group: h5py.Group, col: Column, root: str) -> Any:
    """The column's node, checked against the layout (kind, dtype, shape, tag) before reading."""
    field = _field(col.path, root)
    parent = group
    for name in col.path[:-1]:
        parent = parent[name]
    name = col.path[-1]
    in_attrs, in_group = name in parent.attrs, name in parent
    if in_attrs and in_group:
        raise StateFileError(field, "is stored twice (as an attribute and as a dataset)")
    if not in_attrs and not in_group:
        raise StateFileError(field, "is missing")
    if col.kind == "none":
        if not in_attrs or _attr_value(parent, name) != NONE_MARK:
            raise StateFileError(field, "expected None (this client state has no value here)")
        return None
    if in_attrs:
        raise StateFileError(field, f"is an attribute, expected a {'group' if col.kind == 'group' else 'dataset'}")
    node = check_node(parent, name)
    if col.kind == "group":
        if not isinstance(node, h5py.Group):
            raise StateFileError(field, "is a dataset, expected a group")
        return node
    if not isinstance(node, h5py.Dataset):
        raise StateFileError(field, "is a group, expected a dataset")
    return node


def _check_dataset(ds: h5py.Dataset, col: Column, n: int, field: str) -> None:
    want = (n, *col.shape)
    if ds.dtype != col.dtype:
        raise StateFileError(field, f"has dtype {ds.dtype}, expected {col.dtype} (for {col.tag})")
    if tuple(ds.shape) != want:
        raise StateFileError(field, f"has shape {tuple(ds.shape)}, expected {want} ({n} clients)")
    key = "torch_dtype" if col.kind == "tensor" else "py_type"
    if key not in ds.attrs:
        raise StateFileError(field, f"lacks its {key} attribute")
    tag = _attr_value(ds, key)
    if tag != col.tag:
        raise StateFileError(field, f"holds {tag!r}, expected {col.tag!r}")


def _read_rows(ds: h5py.Dataset, rows: np.ndarray, field: str) -> np.ndarray:
    """``ds[rows]`` (rows increasing), one read per run of consecutive rows."""
    out = np.empty((rows.size, *ds.shape[1:]), dtype=ds.dtype)
    if out.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    try:
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, rows.size], strict=True):
            out[lo:hi] = ds[int(rows[lo]) : int(rows[hi - 1]) + 1]
    except (OSError, TypeError, ValueError) as exc:
        raise StateFileError(field, f"unreadable data ({exc})") from None
    return out


def _container(state: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        state = dict(_children(state))[name]
    return state


def _check_values(data: np.ndarray, col: Column, template: Any, clients: list[int], field: str) -> None:
    parent, name = _container(template, col.path[:-1]), col.path[-1]
    if col.kind == "tensor" and col.tag in ("torch.bfloat16",):
        values = torch.from_numpy(data).view(torch.bfloat16)
        bad = ~torch.isfinite(values).reshape(len(clients), -1).all(1).numpy()
    elif data.dtype.kind in "fc":
        bad = ~np.isfinite(data.reshape(len(clients), -1)).all(1)
    elif col.kind == "scalar" and col.tag in ("bool", "bool_"):
        bad = data > 1
        if bool(bad.any()):
            c = clients[int(np.flatnonzero(bad)[0])]
            raise StateFileError(field, f"holds {int(data[np.flatnonzero(bad)[0]])} for client {c}, expected a boolean")
        return
    else:
        return
    if col.kind == "tensor" and _may_be_nonfinite(parent, name):
        return
    if bool(bad.any()):
        c = clients[int(np.flatnonzero(bad)[0])]
        raise StateFileError(field, f"holds non-finite values (NaN or Inf) for client {c}")


def _per_client(data: np.ndarray, col: Column, like: Any) -> list[Any]:
    """A column's rows as the values of the template's field, one per client (tensors: views of
    one tensor per column, on the template's device)."""
    if col.kind == "tensor":
        t = torch.from_numpy(data)
        if like.dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        if like.device.type not in ("cpu", "meta"):
            t = t.to(like.device)
        return list(t.unbind(0))
    if type(like) in (bool, int, float):
        return [type(like)(v) for v in data.tolist()]
    return list(data)


def _rebuild(template: Any, path: tuple[str, ...], leaves: dict[tuple[str, ...], Any]) -> Any:
    values = {}
    for name, like in _children(template):
        sub = (*path, name)
        if sub in leaves:
            values[name] = leaves[sub]
        elif like is None:
            values[name] = None
        else:
            values[name] = _rebuild(like, sub, leaves)
    return values if isinstance(template, dict) else dataclasses.replace(template, **values)


def read_columns(group: h5py.Group, templates: dict[int, Any], root: str = "clients") -> dict[int, Any]:
    """The states of the clients in ``templates`` (any subset), read from columns into the
    templates' shape; every template must have the same layout (StateFileError otherwise)."""
    ids = _ids(group, root)
    wanted = sorted(templates)
    if not wanted:
        return {}
    columns = layout(templates[wanted[0]])
    if any(layout(templates[c]) != columns for c in wanted[1:]):
        raise StateFileError(root, "holds client states as columns, but this method's client states differ in layout")
    rows = np.searchsorted(ids, wanted)
    for c, r in zip(wanted, rows, strict=True):
        if r >= ids.size or ids[r] != c:
            raise StateFileError(_field(("ids",), root), f"lacks client {c}")
    nodes: dict[tuple[str, ...], Any] = {}
    for col in columns:  # every node checked before any data is read (a group before its fields)
        node = _node(group, col, root)
        if col.kind in ("tensor", "scalar"):
            _check_dataset(node, col, ids.size, _field(col.path, root))
            nodes[col.path] = node
    _check_names(group, columns, root)
    data: dict[tuple[str, ...], np.ndarray] = {}
    for col in columns:
        if col.path in nodes:
            field = _field(col.path, root)
            data[col.path] = _read_rows(nodes[col.path], rows, field)
            _check_values(data[col.path], col, templates[wanted[0]], wanted, field)
    first = templates[wanted[0]]
    values = {c.path: _per_client(data[c.path], c, _container(first, c.path)) for c in columns if c.path in data}
    return {c: _rebuild(templates[c], (), {path: v[k] for path, v in values.items()}) for k, c in enumerate(wanted)}
