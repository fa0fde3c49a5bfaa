"""Exact (de)serialisation of method and aggregator state: no pickle.

States are dataclasses whose fields are tensors, ``None``, numbers, strings, nested dataclasses,
or dicts of these. They are written to HDF5 groups (one dataset per tensor, attributes for
scalars) and read back *into a template* of the same type — the state the method's ``init_*``
builds — so nothing in a checkpoint can make byzmpi construct arbitrary objects.

For moving client states between ranks, :func:`tensors_of` lists a state's tensors in a fixed
order, :func:`pack` turns them into raw bytes and :func:`unpack_into` fills a template from bytes:
bit-exact for any dtype.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

NONE_MARK = "__none__"


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
        elif isinstance(value, (bool, int, float, str, np.integer, np.floating)):
            group.attrs[name] = value
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value)
        else:
            write_state(group.create_group(name), value)


def _tensor_from(ds: h5py.Dataset, like: Tensor | None) -> Tensor:
    data = torch.from_numpy(ds[()] if ds.shape == () else ds[...])
    if ds.attrs.get("torch_dtype") == "torch.bfloat16":
        data = data.view(torch.bfloat16)
    return data.to(like.device) if like is not None else data


def read_state(group: h5py.Group, template: Any) -> Any:
    """Read a state written by :func:`write_state`, into the shape of ``template``."""
    if isinstance(template, dict):
        out = {}
        for key in group:
            out[key] = _read_value(group, key, template.get(key))
        for key, value in group.attrs.items():
            out[key] = None if value == NONE_MARK else value
        return out
    values = {name: _read_value(group, name, value) for name, value in _children(template)}
    return dataclasses.replace(template, **values)


def _read_value(group: h5py.Group, name: str, like: Any) -> Any:
    if name in group.attrs:
        value = group.attrs[name]
        if isinstance(value, str) and value == NONE_MARK:
            return None
        return type(like)(value) if isinstance(like, (bool, int, float, str)) else value
    if name not in group:
        raise KeyError(f"checkpoint lacks state field {group.name}/{name}")
    node = group[name]
    if isinstance(node, h5py.Dataset):
        if isinstance(like, np.ndarray):
            return node[...]
        return _tensor_from(node, like if isinstance(like, Tensor) else None)
    return read_state(node, like if like is not None else {})


def tensors_of(obj: Any) -> list[Tensor]:
    """The tensors of a state tree in a fixed order (dataclass field order, sorted dict keys)."""
    out: list[Tensor] = []
    for _, value in _children(obj):
        if isinstance(value, Tensor):
            out.append(value)
        elif dataclasses.is_dataclass(value) or isinstance(value, dict):
            out.extend(tensors_of(value))
    return out


def packed_size(obj: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors_of(obj))


def pack(obj: Any) -> np.ndarray:
    """The raw bytes of a state's tensors, concatenated (uint8)."""
    parts = [_numpy(t).reshape(-1).view(np.uint8) for t in tensors_of(obj)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8)


def unpack_into(template: Any, raw: np.ndarray) -> None:
    """Fill the tensors of ``template`` in place from bytes made by :func:`pack`."""
    offset = 0
    for t in tensors_of(template):
        n = t.numel() * t.element_size()
        chunk = np.ascontiguousarray(raw[offset : offset + n])
        src = torch.from_numpy(chunk.view(_numpy(t).dtype).reshape(tuple(t.shape)).copy())
        if t.dtype == torch.bfloat16:
            src = src.view(torch.bfloat16)
        t.copy_(src)
        offset += n
    if offset != raw.size:
        raise ValueError(f"state bytes: expected {offset}, got {raw.size}")
