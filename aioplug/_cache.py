"""The model cache: compiled models stored as export blobs under ``CACHE_DIR``.

The key hashes the model's content, the device, the caching-relevant properties, the
plugin's version and aioplug's version. Entries are written atomically (temporary file, then
rename); an entry that fails to import is removed and the model compiled again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import CacheError

__all__ = ["ModelCache", "cache_key"]

log = logging.getLogger(__name__)


def cache_key(model_hash: str, device: str, plugin_version: str, values: dict[str, Any]) -> str:
    """Returns the cache key of a model compiled on ``device`` with ``values``."""
    material = json.dumps(
        {
            "model": model_hash,
            "device": device,
            "plugin": plugin_version,
            "aioplug": __version__,
            "properties": values,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ModelCache:
    """One cache folder of ``<key>.blob`` files."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache folder {str(self.directory)!r}: {exc}") from exc

    def path(self, key: str) -> Path:
        """Where the entry ``key`` lives."""
        return self.directory / f"{key}.blob"

    def load(self, key: str) -> bytes | None:
        """Returns the entry's bytes, or None when there is none."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read cache entry %s: %s", key, exc)
            return None

    def store(self, key: str, data: bytes) -> None:
        """Writes the entry atomically."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".blob")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.path(key))
        except OSError as exc:
            raise CacheError(f"cannot write cache entry in {str(self.directory)!r}: {exc}") from exc

    def remove(self, key: str) -> None:
        """Deletes the entry if it exists."""
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove cache entry %s: %s", key, exc)
