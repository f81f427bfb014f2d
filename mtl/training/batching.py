"""Batching: length-grouped training order, length-sorted evaluation order, and an index-carrying collator.

Sorting by length cuts padding; the index column lets results be put back in the caller's order after
``accelerator.gather_for_metrics``, whichever process saw which batch.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler
from transformers.trainer_pt_utils import LengthGroupedSampler

INDEX_KEY = "mtl_index"


class EpochLengthGroupedSampler(Sampler[int]):
    """transformers' LengthGroupedSampler, reseeded per epoch (``set_epoch``) so a resumed run sees the same order."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(LengthGroupedSampler(self.batch_size, lengths=self.lengths, generator=generator))

    def __len__(self) -> int:
        return len(self.lengths)


class EpochRandomSampler(Sampler[int]):
    """A random permutation reseeded per epoch, for inputs of fixed size."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def with_index(collate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Wrap a collator so that each example's ``mtl_index`` travels beside the batch as a tensor."""

    def collate_with_index(features: list[dict[str, Any]]) -> dict[str, Any]:
        indices = [f.pop(INDEX_KEY) for f in features]
        batch = collate(features)
        batch[INDEX_KEY] = torch.tensor(indices)
        return batch

    return collate_with_index


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        item[INDEX_KEY] = index
        return item


def train_loader(dataset: Any, collate: Callable, batch_size: int, seed: int,
                 lengths: Sequence[int] | None, num_workers: int = 0) -> DataLoader:
    """Training batches: grouped by length when lengths are known, else shuffled."""
    sampler = EpochLengthGroupedSampler(lengths, batch_size, seed) if lengths is not None else \
        EpochRandomSampler(len(dataset), seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, drop_last=False)


def eval_loader(dataset: Any, collate: Callable, batch_size: int, lengths: Sequence[int] | None,
                num_workers: int = 0) -> DataLoader:
    """Evaluation batches in length order (least padding), each carrying the examples' original indices."""
    order = sorted(range(len(dataset)), key=lambda i: -lengths[i]) if lengths is not None else range(len(dataset))
    return DataLoader(_Indexed(dataset), batch_size=batch_size, sampler=list(order), collate_fn=with_index(collate),
                      num_workers=num_workers)
