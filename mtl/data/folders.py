"""Data folders: which splits and labels a folder of images, audio or tables holds, read by its layout.

``<label>/x.jpg`` or ``<split>/<label>/x.jpg`` image folders (datasets' imagefolder, of the images alone), split
tables named for their split (``imdb_train.csv``), and the folders that are not data (an mtl output folder, a
label folder with nothing in it) named before they mislead a run.

Example::

    splits = read_image_folder(Path("photos"))   # DatasetDict: train/test when photos/ has those folders
"""

from __future__ import annotations

import glob
import logging
import os
import re
from pathlib import Path
from typing import Sequence

from datasets import DatasetDict, load_dataset

from ..errors import DataError, describe, first_few
from ..fs import MARKER_FILE, walk_paths
from .audio import AUDIO_SUFFIXES
from .images import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)


NOTES = {".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".xml", ".html", ".log", ".pdf", ".db",
         ".ini"}  # files that sit beside data as notes or listings: left out without a word


def warn_left_out_files(folder: Path, suffixes: Sequence[str], kind: str, leave_out: Sequence[Path] = ()) -> None:
    """Warn about files of other formats than ``suffixes`` in a folder of ``kind`` (SVGs among PNGs, .m4a among
    .wav): they are not read, and a user whose data they are would lose them without a word."""
    counts: dict[str, int] = {}
    paths = list(walk_paths(folder))
    warn_broken_links(folder, paths, "data.source")
    for path in paths:
        suffix = path.suffix.lower()
        if not suffix or suffix in suffixes or suffix in NOTES or path.name.startswith(".") or not path.is_file() \
                or any(out in path.parents for out in leave_out):  # LICENSE, README: no suffix, not data
            continue
        counts[suffix] = counts.get(suffix, 0) + 1
    if counts:
        shown = first_few([f"{count} {suffix}" for suffix, count in sorted(counts.items(), key=lambda kv: -kv[1])], 4)
        logger.warning("data.source: %d files are not %s mtl reads and are left out (%s); mtl reads %s: convert "
                       "them if they are data", sum(counts.values()), kind, shown, ", ".join(suffixes))


def warn_broken_links(folder: Path, paths: Sequence[Path], where: str) -> None:
    """Warn about links among ``paths`` (found in ``folder``) that lead nowhere: their files are left out, and a
    moved or deleted target would otherwise shrink the data without a word."""
    broken = sorted(path for path in paths if path.is_symlink() and not path.exists() and not path.name.startswith("."))
    if broken:
        shown = first_few([f"{path.relative_to(folder)} -> {os.readlink(path)}" for path in broken], 3)
        many = len(broken) > 1
        logger.warning("%s: %d link%s in %s lead%s nowhere and %s left out (%s); fix or remove %s", where,
                       len(broken), "s" if many else "", folder, "" if many else "s", "are" if many else "is",
                       shown, "them" if many else "it")


def warn_empty_label_folders(folder: Path, suffixes: Sequence[str], kind: str) -> None:
    """Warn about folders without subfolders that hold none of ``suffixes`` (an empty ``rose/``, or one holding
    only notes and .DS_Store): their labels silently drop out of the data otherwise."""
    empty = sorted(str(sub.relative_to(folder)) for sub in walk_paths(folder) if sub.is_dir()
                   and not any(part.startswith((".", "__")) for part in sub.relative_to(folder).parts)
                   and not any(entry.is_dir() or entry.suffix.lower() in suffixes for entry in sub.iterdir()))
    if len(empty) == 1:
        logger.warning("data.source: folder %s holds no %s (%s): its label will not be in the data; add %s or "
                       "remove the folder", empty[0], kind, ", ".join(suffixes), kind)
    elif empty:
        logger.warning("data.source: folders %s hold no %s (%s): their labels will not be in the data; add %s or "
                       "remove the folders", first_few(empty, 5), kind, ", ".join(suffixes), kind)


def mtl_output_folders(folder: Path) -> list[Path]:
    """The folders below ``folder`` (or ``folder`` itself) that mtl wrote: a model, a selection report."""
    return sorted(marker.parent for marker in folder.rglob(MARKER_FILE))


def refuse_mtl_outputs(folder: Path, outputs: Sequence[Path]) -> None:
    """A DataError when ``folder`` is, or holds beside the user's images or audio, one of the mtl ``outputs``: its
    plots and recordings are not the user's data."""
    runs = [str(output.relative_to(folder)) for output in outputs]
    if runs == ["."]:
        raise DataError(f"data.source: {folder} is an mtl output folder (a trained model, not data); point "
                        "data.source at your own data")
    if runs:
        raise DataError(f"data.source: {folder} holds mtl output folders ({first_few(runs, 3)}: trained models, not "
                        "data); point data.source at your own data, or move the outputs out of it")


def read_image_folder(folder: Path) -> DatasetDict:
    """``<label>/x.jpg`` or ``<split>/<label>/x.jpg``: the label is the folder right above each image (datasets'
    imagefolder). Images at other depths, or a layout where that folder is not the label (``<label>/<batch>/x.jpg``),
    are an error showing the layout wanted."""
    images = sorted(p.relative_to(folder) for p in walk_paths(folder) if p.is_file() and p.suffix.lower() in
                    IMAGE_SUFFIXES and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts))
    wanted = "lay them out as <label>/<image> or <split>/<label>/<image> (split folders named train, validation or " \
             "test, in lower case), every image one folder below its label's"
    try:
        loaded = load_dataset("imagefolder", data_files=_image_files(folder, images))
    except DataError:
        raise
    except Exception as error:  # datasets' own checks of a folder it cannot read as images with labels
        raise DataError(f"data.source: {folder}: cannot read it as an image folder ({describe(error)}); {wanted}") \
            from None
    if not all("label" in split.column_names for split in loaded.values()):
        depths = sorted({len(p.parts) - 1 for p in images})
        labels = sorted({p.parts[-2] for p in images if len(p.parts) > 1})
        if depths in ([1], [2]) and len(labels) == 1:
            raise DataError(f"data.source: {folder}: every image lies in one label folder ({labels[0]}); a classifier "
                            f"needs at least two labels: add a folder of images for each other label")
        raise DataError(f"data.source: {folder}: cannot take labels from its folders (images lie "
                        f"{' or '.join(map(str, depths))} folders deep, e.g. {images[0]}); {wanted}")
    if any(folder.rglob("metadata.*")):  # labels from a metadata file, not from folder names
        return loaded
    places: dict[str, set[str]] = {}
    for image in images:
        if len(image.parts) >= 3:
            places.setdefault(image.parts[-2], set()).add(image.parts[-3])
    for label, above in sorted(places.items()):
        if len(above) > 1 and not all(_split_folder(name) for name in above):
            shown = ", ".join(f"{name}/{label}" for name in sorted(above)[:3])
            raise DataError(f"data.source: {folder}: images labelled {label!r} (the folder right above them) lie in "
                            f"{shown}: the folders above are not all split names, so the labels would be wrong; "
                            f"{wanted}")
    return loaded


def _image_files(folder: Path, images: Sequence[Path]) -> dict[str, list[str]]:
    """``{split: patterns}`` for datasets' imagefolder, covering the image files alone: ``train/``, ``test/`` ...
    folders (or, in a flat layout, file names) name the split, as datasets reads them, but another file whose name
    holds a split's name (``test_notes.csv``) makes no split, and no image is left out silently. When the names do
    not place every image, all of them are one split (``train``; mtl holds out the rest), unless split folders
    exist: then the images outside them are a DataError (pooled, test images would train)."""
    by_split: dict[str | None, list[Path]] = {}
    for image in images:
        split = next((named for part in image.parts[:-1] if (named := split_named(part))), None)
        by_split.setdefault(split or split_named(image.stem), []).append(image)
    outside = by_split.pop(None, [])
    if outside and by_split:
        split_folders = sorted({image.parts[0] for image in images
                                if len(image.parts) > 2 and _split_folder(image.parts[0])})
        if split_folders:  # pooling them would put the user's test images into training
            raise DataError(f"data.source: {folder}: {len(outside)} images lie outside its split folders "
                            f"({', '.join(split_folders)}), e.g. {sorted(outside)[0]}; move every image into "
                            "<split>/<label>/ (split folders are named train, validation or test, in lower case), "
                            "or use no split folders at all")
    if outside or not by_split:
        by_split = {"train": list(images)}
    elif list(by_split) != ["train"]:
        logger.info("data.source: splits from the %s names: %s", "folder" if any(len(p.parts) > 2 for p in images)
                    else "file", ", ".join(f"{split} {len(found):,}" for split, found in by_split.items()))
    return _as_patterns(folder.resolve(), by_split)  # datasets gives absolute paths, whatever form folder takes


def _as_patterns(root: Path, by_split: dict[str, list[Path]]) -> dict[str, list[str]]:
    """Each split's images as few glob patterns: ``label/*.jpg`` where every such file of that folder is in the
    split, the file itself otherwise (datasets resolves each pattern alone: one per file took minutes for 100,000
    images)."""
    split_of = {image: split for split, split_images in by_split.items() for image in split_images}
    groups: dict[tuple[Path, str], set[str]] = {}
    for image, split in split_of.items():
        groups.setdefault((image.parent, image.suffix), set()).add(split)
    patterns: dict[str, dict[str, None]] = {split: {} for split in by_split}  # in the order of their first image
    for image in sorted(split_of):
        whole = len(groups[(image.parent, image.suffix)]) == 1
        pattern = f"{glob.escape(str(root / image.parent))}/*{glob.escape(image.suffix)}" if whole else \
            glob.escape(str(root / image))  # a folder named "a [v2]" is no pattern
        patterns[split_of[image]][pattern] = None
    return {split: list(found) for split, found in patterns.items()}


SPLIT_WORDS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "dev": "validation", "val": "validation", "test": "test", "testing": "test", "eval": "test",
               "evaluation": "test"}


def split_named(name: str) -> str | None:
    """The split a file or folder ``name`` names (train, validation or test): one of datasets' split words at its
    start or after a separator (``cifar_test``, ``imdb-train``, ``train_data``), in lower case; else None."""
    found = re.fullmatch(rf"(?:.*[-_. ])?({'|'.join(SPLIT_WORDS)})(?:[-_. ].*)?", name)
    return SPLIT_WORDS[found.group(1)] if found else None


def _split_folder(name: str) -> bool:
    """Whether datasets' imagefolder reads folder ``name`` as a split (it merges a ``Test`` folder into train)."""
    return split_named(name) is not None


def tables_named_by_split(folder: Path, tables: Sequence[Path], table_suffixes: Sequence[str]) -> dict[str, Path]:
    """``{split: table}`` for a folder of tables named like ``imdb_train.csv`` / ``test_data.csv``; a DataError
    naming what the folder holds when no name says its split, or two say the same one."""
    by_split: dict[str, list[Path]] = {}
    for table in tables:
        if split := split_named(table.stem.lower()):
            by_split.setdefault(split, []).append(table)
    if "train" in by_split and all(len(named) == 1 for named in by_split.values()):
        logger.info("data.source: split files by name: %s", ", ".join(f"{split} {named[0].name}"
                                                                      for split, named in by_split.items()))
        return {split: named[0] for split, named in by_split.items()}
    example = "data.files={train: ..., test: ...}"
    if any(len(named) > 1 for named in by_split.values()):
        split, named = next((split, named) for split, named in by_split.items() if len(named) > 1)
        raise DataError(f"data.source: folder {folder} holds {len(named)} {split} files "
                        f"({first_few([p.name for p in named], 3)}); keep one per split, or name them with {example}")
    if len(tables) == 1 and not by_split:  # one table: all the data, as when data.source names the file
        logger.info("data.source: the folder's one table %s holds all the data", tables[0].name)
        return {"train": tables[0]}
    if tables:
        raise DataError(f"data.source: folder {folder} holds tables ({first_few([p.name for p in tables], 3)}) "
                        f"but no train file by name; name them train.csv, test.csv, ... or give {example}")
    others = sorted({p.suffix.lower() for p in walk_paths(folder) if p.is_file() and not p.name.startswith(".")})
    held = f"it holds only {first_few(others, 6)} files" if others else "it is empty"
    raise DataError(f"data.source: folder {folder} holds nothing mtl reads ({held}); mtl reads tables named "
                    f"train.csv, test.csv, ... ({', '.join(table_suffixes)}), or images ({', '.join(IMAGE_SUFFIXES)}) "
                    f"or audio ({', '.join(AUDIO_SUFFIXES)}) in <label>/ folders")


def holds_media(folder: Path, suffixes: Sequence[str], leave_out: Sequence[Path] = ()) -> bool:
    """Whether ``folder`` (recursively, but for the folders in ``leave_out``) holds a file ending in ``suffixes``."""
    return any(p.suffix.lower() in suffixes and p.is_file() and not any(out in p.parents for out in leave_out)
               for p in walk_paths(folder))
