"""Groups of parameter-shaped tensors in a result file: directions today; curve bends and eigenvectors next.

Layout: ``<group>/<member>/<parameter name>`` datasets (``directions/x/0.weight``),
each member carrying a ``sha256`` attribute, the :func:`tensor_digest` of its
tensors. The digest identifies the tensors themselves, not the file around them:
a surface made from another file's directions records the digest of those
directions, which does not change as that file gains points.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np
import torch

from engine.io.store.files import damaged, open_h5

TensorSet = dict[str, torch.Tensor]


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 of names, dtypes, shapes and values, in name order: equal tensors, equal digest."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{str(tensor.dtype).replace('torch.', '')}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def write_tensor_group(handle: h5py.File, group: str, members: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Write each member's tensors (as given: callers choose the stored dtype) with its digest.

    The digest is a fixed-width attribute, so :func:`overwrite_tensor_group` can replace
    the tensors later by writing raw data only.
    """
    parent = handle.require_group(group)
    for member, tensors in members.items():
        node = parent.create_group(member)
        stored = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
        for name, tensor in stored.items():
            node.create_dataset(name, data=tensor.numpy())
        node.attrs["sha256"] = np.bytes_(tensor_digest(stored))


def overwrite_tensor_group(handle: h5py.File, group: str, members: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Replace the tensors of existing members in place (same names, shapes and dtypes), digest last."""
    for member, tensors in members.items():
        node = handle[group][member]
        stored = {name: np.array(tensor.detach().cpu().numpy(), dtype=node[name].dtype, order="C")
                  for name, tensor in tensors.items()}  # np.array keeps a 0-d tensor 0-d
        for name, array in stored.items():
            node[name][...] = array
        node.attrs.modify("sha256", np.bytes_(tensor_digest({n: torch.from_numpy(a) for n, a in stored.items()})))


def read_tensor_group(path: str | Path, group: str, members: list[str] | None = None) -> dict[str, TensorSet]:
    """Members of a tensor group, in stored order, each checked against its recorded digest."""
    with open_h5(path) as handle:
        if group not in handle or not isinstance(handle[group], h5py.Group):
            raise damaged(path, f"it has no {group} group")
        parent = handle[group]
        result: dict[str, TensorSet] = {}
        for member in members if members is not None else list(parent):
            if member not in parent:
                continue
            node = parent[member]
            if not isinstance(node, h5py.Group):
                raise damaged(path, f"{group}/{member} is an array, not a group of tensors")
            tensors: TensorSet = {}
            for name, item in node.items():
                if not isinstance(item, h5py.Dataset) or not np.issubdtype(item.dtype, np.number):
                    raise damaged(path, f"{group}/{member}/{name} is not a numeric array")
                tensors[name] = torch.from_numpy(np.array(item[()]))  # 0-d stays 0-d (ascontiguousarray makes it 1-d)
            recorded = node.attrs.get("sha256")
            if recorded is not None:
                recorded = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
                if recorded != tensor_digest(tensors):
                    raise damaged(path, f"the tensors in {group}/{member} do not match their recorded sha256")
            result[member] = tensors
        return result


def tensor_group_digests(path: str | Path, group: str) -> dict[str, str]:
    """Each member's digest: the recorded one, or (files written before digests) computed from its tensors."""
    with open_h5(path) as handle:
        if group not in handle or not isinstance(handle[group], h5py.Group):
            raise damaged(path, f"it has no {group} group")
        recorded = {member: node.attrs.get("sha256") for member, node in handle[group].items()}
    missing = [member for member, value in recorded.items() if value is None]
    computed = {m: tensor_digest(t) for m, t in read_tensor_group(path, group, missing).items()} if missing else {}
    return {member: computed[member] if value is None else (value.decode() if isinstance(value, bytes) else str(value))
            for member, value in recorded.items()}
