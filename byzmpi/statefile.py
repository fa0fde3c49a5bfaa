"""Exact (de)serialisation of method and aggregator state: no pickle.

States are dataclasses whose fields are tensors, ``None``, numbers, strings, nested dataclasses,
or dicts of these. They are written to HDF5 groups (one dataset per tensor, attributes for
scalars) and read back *into a template* of the same type — the state the method's ``init_*``
builds — so nothing in a checkpoint can make byzmpi construct arbitrary objects.

For moving client states between ranks, :func:`tensors_of` lists a state's tensors in a fixed
order, :func:`pack` turns its tensors and python scalars (bool: 1 byte, int: int64, float:
float64) into raw bytes and :func:`unpack_into` fills a template from bytes: bit-exact for any
dtype. ``None`` fields take no bytes and stay ``None``.

Reading never trusts the file: every node must be a hard link (no soft or external links), every
dataset contiguous or compact storage in this file (no external storage, virtual datasets or
filters), with exactly the template's shape and dtype (checked before any data is read), every
float finite (unless the field is declared otherwise, see :func:`read_state`), every scalar of
the template's type, and no field the template lacks. A violation raises
:class:`StateFileError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from typing import Any

import h5py
import numpy as np
import torch
from h5py import h5d
from torch import Tensor

NONE_MARK = "__none__"
#: the longest string attribute a state may hold (characters)
MAX_STR = 4096
#: dtypes a tensor may have in a free-form state dict (an aggregator's state: no template)
FREE_DTYPES = ("torch.float16", "torch.bfloat16", "torch.float32", "torch.float64")


class StateFileError(ValueError):
    """A stored state does not match what byzmpi expects; ``field`` is its HDF5 path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem = message


def _children(obj: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    if isinstance(obj, dict):
        return sorted(obj.items())
    raise TypeError(f"cannot serialise state of type {type(obj).__name__}")


def _numpy(t: Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy()
    return t.numpy()


def write_state(group: h5py.Group, obj: Any) -> None:
    """Write a state tree into ``group``."""
    for name, value in _children(obj):
        if isinstance(value, Tensor):
            ds = group.create_dataset(name, data=_numpy(value))
            ds.attrs["torch_dtype"] = str(value.dtype)
        elif value is None:
            group.attrs[name] = NONE_MARK
        elif isinstance(value, (bool, int, float, str, np.integer, np.floating, np.bool_)):
            group.attrs[name] = value
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value)
        else:
            write_state(group.create_group(name), value)


def show(value: Any) -> str:
    """A stored value for an error message: numpy scalars as plain python values."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _field(group: h5py.Group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}".lstrip("/")


def check_node(group: h5py.Group, name: str) -> h5py.Group | h5py.Dataset:
    """``group[name]`` after checking that it is a hard link to a group or a plain in-file dataset."""
    field = _field(group, name)
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.SoftLink):
        raise StateFileError(field, f"is a soft link (to {link.path!r}); byzmpi writes none")
    if isinstance(link, h5py.ExternalLink):
        raise StateFileError(field, f"is an external link (to {link.filename!r}); byzmpi follows none")
    if not isinstance(link, h5py.HardLink):
        raise StateFileError(field, "is a link of an unknown kind; byzmpi follows none")
    node = group[name]
    if isinstance(node, h5py.Dataset):
        check_dataset(node, field)
    elif not isinstance(node, h5py.Group):
        raise StateFileError(field, f"is a {type(node).__name__}, not a group or dataset")
    return node


def check_dataset(ds: h5py.Dataset, field: str) -> None:
    """Refuse storage that reads outside this file or needs decoding: virtual, external, filtered."""
    if ds.is_virtual:
        raise StateFileError(field, "is a virtual dataset (it maps other files); byzmpi writes none")
    plist = ds.id.get_create_plist()
    if plist.get_external_count() > 0:
        raise StateFileError(field, "has external storage (its bytes live in another file); byzmpi writes none")
    if plist.get_layout() not in (h5d.CONTIGUOUS, h5d.COMPACT):
        raise StateFileError(field, "is chunked or filtered; byzmpi writes contiguous datasets only")


def _attr_value(group: h5py.Group, name: str) -> Any:
    field = _field(group, name)
    aid = group.attrs.get_id(name)
    if aid.shape != ():
        raise StateFileError(field, f"is an attribute of shape {aid.shape}, expected a scalar")
    try:
        value = group.attrs[name]
    except (OSError, TypeError, ValueError) as exc:
        raise StateFileError(field, f"unreadable attribute ({exc})") from None
    if isinstance(value, bytes):
        raise StateFileError(field, "is a byte string, expected a text or number attribute")
    if isinstance(value, str) and len(value) > MAX_STR:
        raise StateFileError(field, f"is a string of {len(value)} characters (at most {MAX_STR})")
    return value


def _expected_dtype(like: Tensor) -> np.dtype:
    return _numpy(torch.empty(0, dtype=like.dtype)).dtype


def _read_tensor(ds: h5py.Dataset, field: str, like: Tensor, *, finite: bool = True) -> Tensor:
    """The dataset as a tensor like ``like``: shape, dtype and (with ``finite``) finiteness checked
    (shape and dtype before reading any data)."""
    want = _expected_dtype(like)
    if ds.dtype != want:
        raise StateFileError(field, f"has dtype {ds.dtype}, expected {want} (for {like.dtype})")
    if tuple(ds.shape) != tuple(like.shape):
        raise StateFileError(field, f"has shape {tuple(ds.shape)}, expected {tuple(like.shape)}")
    if "torch_dtype" not in ds.attrs:
        raise StateFileError(field, "lacks its torch_dtype attribute")
    tag = _attr_value(ds, "torch_dtype")
    if tag != str(like.dtype):
        raise StateFileError(field, f"holds {tag!r}, expected {str(like.dtype)!r}")
    try:
        array = ds[()] if ds.shape == () else ds[...]
    except (OSError, TypeError, ValueError) as exc:
        raise StateFileError(field, f"unreadable data ({exc})") from None
    data = torch.from_numpy(np.ascontiguousarray(array))
    if like.dtype == torch.bfloat16:
        data = data.view(torch.bfloat16)
    if finite and (data.is_floating_point() or data.is_complex()) and not bool(torch.isfinite(data).all()):
        raise StateFileError(field, "holds non-finite values (NaN or Inf)")
    return data if like.device.type in ("cpu", "meta") else data.to(like.device)


def _read_array(ds: h5py.Dataset, field: str, like: np.ndarray, *, finite: bool = True) -> np.ndarray:
    if ds.dtype != like.dtype or tuple(ds.shape) != like.shape:
        raise StateFileError(
            field, f"has dtype {ds.dtype} and shape {tuple(ds.shape)}, expected {like.dtype} and {like.shape}"
        )
    try:
        array = np.asarray(ds[()] if ds.shape == () else ds[...])
    except (OSError, TypeError, ValueError) as exc:
        raise StateFileError(field, f"unreadable data ({exc})") from None
    if finite and array.dtype.kind in "fc" and not np.isfinite(array).all():
        raise StateFileError(field, "holds non-finite values (NaN or Inf)")
    return array


def _scalar(field: str, value: Any, like: Any) -> Any:
    """A stored attribute as the template's scalar type, or StateFileError."""
    if like is None:
        if isinstance(value, str) and value == NONE_MARK:
            return None
        raise StateFileError(field, f"is {show(value)}, expected None (the state has no value here)")
    if isinstance(value, str) and value == NONE_MARK:
        raise StateFileError(field, f"is None, expected a {type(like).__name__}")
    if isinstance(like, (bool, np.bool_)):
        if not isinstance(value, (bool, np.bool_)):
            raise StateFileError(field, f"is {show(value)}, expected a boolean (true/false)")
        return type(like)(value)
    if isinstance(like, (int, np.integer)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise StateFileError(field, f"is {show(value)}, expected an integer")
        return type(like)(value)
    if isinstance(like, (float, np.floating)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise StateFileError(field, f"is {show(value)}, expected a number")
        if not math.isfinite(float(value)):
            raise StateFileError(field, f"is {show(value)}, expected a finite number")
        return type(like)(value)
    if isinstance(like, str):
        if not isinstance(value, str):
            raise StateFileError(field, f"is {show(value)}, expected a string")
        return value
    raise StateFileError(field, f"holds an attribute where the state has a {type(like).__name__}")


def _is_scalar_template(like: Any) -> bool:
    return like is None or isinstance(like, (bool, int, float, str, np.integer, np.floating, np.bool_))


def _may_be_nonfinite(template: Any, name: str) -> bool:
    if dataclasses.is_dataclass(template) and not isinstance(template, type):
        for f in dataclasses.fields(template):
            if f.name == name:
                return f.metadata.get("finite", True) is False
    return False


def read_state(
    group: h5py.Group, template: Any, *, free_max_numel: int | None = None, nonfinite: Collection[str] = ()
) -> Any:
    """Read a state written by :func:`write_state`, into the shape of ``template``; checks every
    field against the template (see the module docstring) and raises :class:`StateFileError`.

    Every floating tensor must be finite, except the fields named (by HDF5 path, e.g.
    ``server/g_clients``) in ``nonfinite`` and dataclass fields declared with
    ``field(metadata={"finite": False})``: per-client stores a Byzantine client can drive to
    infinity, which the method itself leaves out of the aggregation.

    An empty dict template accepts only an empty group, unless ``free_max_numel`` is given: then
    every entry must be a floating tensor of at most two dimensions and that many elements (or
    None): an aggregator's state, whose keys the rule chooses.
    """
    if isinstance(template, dict) and not template and free_max_numel is not None:
        return _read_free(group, free_max_numel)
    expected = {name for name, _ in _children(template)}
    for keys in (group.attrs.keys(), group.keys()):
        for key in keys:  # stops at the first unknown name: at most len(expected) + 1 steps
            if key not in expected:
                raise StateFileError(_field(group, key), "is not a field of this state")
    values = {
        name: _read_value(
            group,
            name,
            like,
            finite=_field(group, name) not in nonfinite and not _may_be_nonfinite(template, name),
            nonfinite=nonfinite,
        )
        for name, like in _children(template)
    }
    if isinstance(template, dict):
        return values
    return dataclasses.replace(template, **values)


def _read_free(group: h5py.Group, max_numel: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in group.attrs.keys():
        out[key] = _scalar(_field(group, key), _attr_value(group, key), None)
    for key in group.keys():
        field = _field(group, key)
        if key in out:
            raise StateFileError(field, "is stored twice (as an attribute and as a dataset)")
        node = check_node(group, key)
        if not isinstance(node, h5py.Dataset):
            raise StateFileError(field, "is a group, expected a tensor")
        numel = math.prod(node.shape)
        if len(node.shape) > 2 or numel > max_numel:
            raise StateFileError(
                field,
                f"has shape {tuple(node.shape)}; an aggregator's state holds tensors of at most 2 dimensions and "
                f"{max_numel} elements (the server state's largest tensor)",
            )
        tag = _attr_value(node, "torch_dtype") if "torch_dtype" in node.attrs else None
        if tag not in FREE_DTYPES:
            raise StateFileError(field, f"has torch_dtype {tag!r}, expected one of {', '.join(FREE_DTYPES)}")
        like = torch.empty(node.shape, dtype=getattr(torch, str(tag).removeprefix("torch.")), device="meta")
        out[key] = _read_tensor(node, field, like)
    return out


def _read_value(group: h5py.Group, name: str, like: Any, *, finite: bool, nonfinite: Collection[str]) -> Any:
    field = _field(group, name)
    in_attrs, in_group = name in group.attrs, name in group
    if in_attrs and in_group:
        raise StateFileError(field, "is stored twice (as an attribute and as a dataset)")
    if not in_attrs and not in_group:
        raise StateFileError(field, "is missing")
    if in_attrs:
        if not _is_scalar_template(like):
            raise StateFileError(field, f"is an attribute, expected a {type(like).__name__}")
        return _scalar(field, _attr_value(group, name), like)
    node = check_node(group, name)
    if isinstance(node, h5py.Dataset):
        if isinstance(like, Tensor):
            return _read_tensor(node, field, like, finite=finite)
        if isinstance(like, np.ndarray):
            return _read_array(node, field, like, finite=finite)
        raise StateFileError(field, f"is a dataset, expected {'None' if like is None else type(like).__name__}")
    if _is_scalar_template(like) or isinstance(like, (Tensor, np.ndarray)):
        raise StateFileError(field, f"is a group, expected {'None' if like is None else type(like).__name__}")
    return read_state(node, like, nonfinite=nonfinite)


def tensors_of(obj: Any) -> list[Tensor]:
    """The tensors of a state tree in a fixed order (dataclass field order, sorted dict keys)."""
    out: list[Tensor] = []
    for _, value in _children(obj):
        if isinstance(value, Tensor):
            out.append(value)
        elif dataclasses.is_dataclass(value) or isinstance(value, dict):
            out.extend(tensors_of(value))
    return out


#: how python scalars travel in :func:`pack` (numpy scalars keep their own dtype)
_SCALAR_DTYPES: dict[type, np.dtype] = {bool: np.dtype(np.uint8), int: np.dtype(np.int64), float: np.dtype(np.float64)}


def _leaves(obj: Any) -> list[tuple[Any, str, Any]]:
    """(container, key, value) of every tensor and scalar of a state tree, in the order of
    :func:`tensors_of`; strings cannot be packed (their size is not fixed)."""
    out: list[tuple[Any, str, Any]] = []
    for name, value in _children(obj):
        if isinstance(value, (Tensor, bool, int, float, np.integer, np.floating, np.bool_)):
            out.append((obj, name, value))
        elif value is None:
            continue
        elif isinstance(value, str):
            raise TypeError(f"cannot pack the string field {name!r} of a state (no fixed size)")
        elif dataclasses.is_dataclass(value) or isinstance(value, dict):
            out.extend(_leaves(value))
        else:
            raise TypeError(f"cannot pack field {name!r} of type {type(value).__name__}")
    return out


def _scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return np.dtype(type(value))
    return _SCALAR_DTYPES[bool if isinstance(value, bool) else int if isinstance(value, int) else float]


def _leaf_bytes(value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return _numpy(value).reshape(-1).view(np.uint8)
    return np.asarray(value, dtype=_scalar_dtype(value)).reshape(1).view(np.uint8)


def _leaf_size(value: Any) -> int:
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    return _scalar_dtype(value).itemsize


def packed_size(obj: Any) -> int:
    """Bytes :func:`pack` makes of ``obj``: its tensors and its python/numpy scalars."""
    return sum(_leaf_size(value) for _, _, value in _leaves(obj))


def pack(obj: Any) -> np.ndarray:
    """The raw bytes of a state's tensors and scalars, concatenated (uint8), in a fixed order."""
    parts = [_leaf_bytes(value) for _, _, value in _leaves(obj)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8)


def _set(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
    else:
        object.__setattr__(container, key, value)  # also a frozen dataclass: the template is ours


def unpack_into(template: Any, raw: np.ndarray) -> Any:
    """Fill ``template`` in place from bytes made by :func:`pack` (tensors copied into, scalar
    fields replaced by values of the template's type); returns the template."""
    leaves = _leaves(template)
    need = sum(_leaf_size(value) for _, _, value in leaves)
    if need != raw.size:
        raise ValueError(f"state bytes: expected {need}, got {raw.size}")
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    offset = 0
    for container, key, t in leaves:
        n = _leaf_size(t)
        chunk = raw[offset : offset + n].copy()
        offset += n
        if isinstance(t, Tensor):
            src = torch.from_numpy(chunk.view(_numpy(t).dtype).reshape(tuple(t.shape)))
            if t.dtype == torch.bfloat16:
                src = src.view(torch.bfloat16)
            t.copy_(src)
            continue
        value = chunk.view(_scalar_dtype(t))[0]
        _set(container, key, type(t)(value) if type(t) in (bool, int, float) else value)
    return template
