"""Read ConfigMaps from a folder of YAML or JSON files (the local mode and ``spo render``).

Files ending in .yaml, .yml or .json are read, recursively, in name order; a
file may hold several YAML documents and ``kind: List`` objects. A file that
cannot be parsed stops the round (``FolderError``); an object that parses but is
malformed (``metadata: "x"``) is passed on, for the readers to refuse that one
alone, and logged here with its file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
log = logging.getLogger(__name__)


def _files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(
            Path(directory) / name
            for name in sorted(names)
            if name.endswith(SUFFIXES) and not name.startswith(".")
        )
    return found


def _flatten(document: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return
    if str(document.get("kind", "")).endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from _flatten(item)
    else:
        yield document


def _documents(path: Path) -> list[Any]:
    text = path.read_bytes()
    if path.suffix == ".json":
        return [json.loads(text)]
    return list(yaml.load_all(text, Loader=_Loader))


class FolderError(Exception):
    """The folder, or one of its files, cannot be read: nothing may be concluded from it."""


def iter_folder(folder: Path) -> Iterator[Mapping[str, Any]]:
    """Every Kubernetes object found in the folder's files (not only ConfigMaps), file by
    file, so that a folder of many files is never held in memory all at once.

    A missing folder or an unreadable file raises FolderError rather than being
    skipped: converging on a partial view would remove the profiles it misses
    (a typo in the path, or a file caught half-saved, would wipe the node).
    """
    if not folder.is_dir():
        raise FolderError(f"{folder} is not a folder")
    for path in _files(folder):
        try:
            documents = _documents(path)
        except (OSError, ValueError, yaml.YAMLError) as error:
            raise FolderError(f"cannot read {path}: {error}") from error
        for document in documents:
            for obj in _flatten(document):
                if not isinstance(obj.get("metadata"), Mapping):
                    log.warning(
                        "%s holds a %s whose metadata is not an object", path, obj.get("kind")
                    )
                yield obj


def folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the folder's files: changes when they change."""
    signature: list[tuple[str, int, int]] = []
    for path in _files(folder):
        try:
            st = path.stat()
        except OSError:
            continue
        signature.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(signature)
