"""What the server serves: model specs, read from a model file or a model repository folder.

A single ``.onnx`` file is served under its file stem, version 1. A repository folder holds
one folder per model, and in it one numbered folder per version with a ``model.onnx``::

    repository/
      mlp/
        config.json        optional: {"device": "CPU", "properties": {...}, "versions": [2]}
        1/model.onnx
        2/model.onnx

Every version found is served; the highest one answers requests that name no version. A
model's ``config.json`` overrides the ``models`` entry of the server settings; the server
fills what neither sets from its own ``device``, ``properties``, ``max_queued_requests`` and
``performance_hint``
(see :meth:`ModelSpec.resolved`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import ModelSource
from .errors import RepositoryError
from .settings import ServerSettings

__all__ = ["ModelSpec", "load_repository", "MODEL_FILENAME", "CONFIG_FILENAME"]

log = logging.getLogger(__name__)

MODEL_FILENAME = "model.onnx"
CONFIG_FILENAME = "config.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CONFIG_KEYS = frozenset({"device", "properties", "versions"})


@dataclass(frozen=True)
class ModelSpec:
    """One model version to compile and serve: its name, version, source, device and properties."""

    name: str
    source: ModelSource
    version: int = 1
    device: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise RepositoryError(
                f"model name {self.name!r} must start with a letter or digit and hold only "
                "letters, digits, '_', '.' and '-'"
            )
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise RepositoryError(f"model {self.name!r}: version must be an integer >= 1, got {self.version!r}")

    def resolved(self, settings: ServerSettings) -> tuple[str | None, dict[str, Any]]:
        """The device and compile properties to use under ``settings``: own, then the
        ``models`` entry, then the server-wide defaults; MAX_QUEUED_REQUESTS defaults to
        ``settings.max_queued_requests`` and PERFORMANCE_HINT to ``settings.performance_hint``."""
        entry = settings.models.get(self.name, {})
        device = self.device or entry.get("device") or settings.device
        properties = {**settings.properties, **entry.get("properties", {}), **self.properties}
        properties.setdefault("MAX_QUEUED_REQUESTS", settings.max_queued_requests)
        if settings.performance_hint is not None:
            properties.setdefault("PERFORMANCE_HINT", settings.performance_hint)
        return device, properties


def _check_config(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise RepositoryError(f"{where}: the model config must be a JSON object")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise RepositoryError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_CONFIG_KEYS))}"
        )
    device = config.get("device")
    if device is not None and (not isinstance(device, str) or not device):
        raise RepositoryError(f"{where}: 'device' must be a device name such as \"CPU\"")
    properties = config.get("properties", {})
    if not isinstance(properties, Mapping):
        raise RepositoryError(f"{where}: 'properties' must be an object of compile properties")
    versions = config.get("versions")
    if versions is not None and (
        not isinstance(versions, list)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions)
    ):
        raise RepositoryError(f"{where}: 'versions' must be a list of integers >= 1")
    return dict(config)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RepositoryError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise RepositoryError(f"{path} is not valid JSON: {exc}") from exc
    return _check_config(data, str(path))


def _spec(name: str, version: int, source: ModelSource, config: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(name, source, version, config.get("device"), dict(config.get("properties", {})))


def _merged_config(name: str, folder: Path | None, settings: ServerSettings) -> dict[str, Any]:
    config = _check_config(settings.models.get(name, {}), f"server settings, model {name!r}")
    if folder is not None and (folder / CONFIG_FILENAME).is_file():
        own = _read_config(folder / CONFIG_FILENAME)
        props = {**config.get("properties", {}), **own.get("properties", {})}
        config = {**config, **own, "properties": props}
    return config


def _load_folder_model(folder: Path, settings: ServerSettings) -> list[ModelSpec]:
    name = folder.name
    config = _merged_config(name, folder, settings)
    found: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            continue
        if not entry.name.isdigit() or int(entry.name) < 1:
            log.warning("ignoring %s: a version folder is named by an integer >= 1", entry)
            continue
        model_file = entry / MODEL_FILENAME
        if not model_file.is_file():
            log.warning("ignoring %s: it has no %s", entry, MODEL_FILENAME)
            continue
        found[int(entry.name)] = model_file
    wanted = config.get("versions")
    if wanted is not None:
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise RepositoryError(
                f"model {name!r}: config asks for version(s) {missing}, but {folder} holds "
                f"{sorted(found) or 'none'}"
            )
        found = {v: p for v, p in found.items() if v in wanted}
    return [_spec(name, v, str(p), config) for v, p in sorted(found.items())]


def load_repository(path: str | os.PathLike[str], settings: ServerSettings | None = None) -> list[ModelSpec]:
    """Returns the model specs of a model file or repository folder.

    Raises RepositoryError when the path does not exist, a config is invalid, or the
    repository holds no model.
    """
    settings = settings or ServerSettings()
    root = Path(path)
    if root.is_file():
        if root.suffix != ".onnx":
            raise RepositoryError(f"{root} is not an .onnx model file nor a repository folder")
        config = _merged_config(root.stem, None, settings)
        return [_spec(root.stem, 1, str(root), config)]
    if not root.is_dir():
        raise RepositoryError(f"{root} does not exist: give an .onnx file or a model repository folder")
    specs: list[ModelSpec] = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            specs.extend(_load_folder_model(folder, settings))
    if not specs:
        raise RepositoryError(
            f"{root} holds no model: expected NAME/VERSION/{MODEL_FILENAME}, e.g. mlp/1/{MODEL_FILENAME}"
        )
    return specs
