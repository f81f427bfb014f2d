"""Batching: length-grouped training order, length-sorted evaluation order, and an index-carrying collator.

Sorting by length cuts padding; the index column lets results be put back in the caller's order after
``accelerate.gather_for_metrics``, whichever process saw which batch. Training batches are read under random
states seeded from the batch itself (:class:`SeededBatches`), so random augmentation does not depend on when a
batch is read: a run resumed in the middle of an epoch sees the same augmented batches as one never stopped.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import random

import numpy as np
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


class SeededBatches(torch.utils.data.Dataset):
    """``dataset`` read a batch at a time under Python, NumPy and torch (CPU) random states seeded from
    ``(seed, epoch, the batch's indices)``; the caller's random states are put back after each read.

    Augmentation drawn while reading is then a function of which examples are read in which epoch, not of
    what ran before: accelerate reads one batch ahead, and a resumed run must not see other augmentations.
    """

    def __init__(self, dataset: Any, sampler: EpochLengthGroupedSampler | EpochRandomSampler, seed: int):
        self.dataset, self.sampler, self.seed = dataset, sampler, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        seed = int(np.random.SeedSequence([self.seed, self.sampler.epoch, *map(int, indices)]).generate_state(1)[0])
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            if callable(getattr(self.dataset, "__getitems__", None)):
                return self.dataset.__getitems__(indices)
            return [self.dataset[i] for i in indices]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


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
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch read at once (one transform call per batch, not per example)."""
        reader = getattr(self.dataset, "__getitems__", None)
        rows = reader(indices) if callable(reader) else [self.dataset[i] for i in indices]
        return [{**row, INDEX_KEY: index} for row, index in zip(rows, indices)]


def train_loader(dataset: Any, collate: Callable, batch_size: int, seed: int,
                 lengths: Sequence[int] | None, num_workers: int = 0) -> DataLoader:
    """Training batches: grouped by length when lengths are known, else shuffled; each read under its own
    seeded random states (:class:`SeededBatches`). A last batch of a single example is left out (another example
    each epoch, as the order changes): batch norm cannot train on one example, and its step would be noise."""
    sampler = EpochLengthGroupedSampler(lengths, batch_size, seed) if lengths is not None else \
        EpochRandomSampler(len(dataset), seed)
    single_last = batch_size > 1 and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(SeededBatches(dataset, sampler, seed), batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, drop_last=single_last, pin_memory=torch.cuda.is_available())


def eval_loader(dataset: Any, collate: Callable, batch_size: int, lengths: Sequence[int] | None,
                num_workers: int = 0) -> DataLoader:
    """Evaluation batches in length order (least padding), each carrying the examples' original indices."""
    order = sorted(range(len(dataset)), key=lambda i: -lengths[i]) if lengths is not None else range(len(dataset))
    return DataLoader(_Indexed(dataset), batch_size=batch_size, sampler=list(order), collate_fn=with_index(collate),
                      num_workers=num_workers, pin_memory=torch.cuda.is_available())
