"""Streaming line readers over local files and http(s) URLs, plain or gzip-compressed.

Bytes are read lazily: a capped run over a URL stops downloading as soon as the
caller stops iterating. Every byte consumed feeds a progress bar and a SHA-256,
which becomes the run's input hash.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import socket
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from stages.errors import PipelineInputError

_GZIP_MAGIC = b"\x1f\x8b"
_READ_BLOCK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError, OSError)


def is_url(source: str) -> bool:
    """True for http(s) sources."""
    return source.startswith(("http://", "https://"))


class _Metered(io.RawIOBase):
    """A raw reader that hashes and counts what passes through it."""

    def __init__(self, raw, progress: tqdm):
        self._raw = raw
        self._progress = progress
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.bytes_read += n
        self._progress.update(n)
        return n


class SourceStream:
    """Lines (bytes, newline stripped) of one source, with what was consumed so far."""

    def __init__(self, name: str, reader: io.BufferedIOBase, metered: _Metered):
        self.name = name
        self._reader = reader
        self._metered = metered

    @property
    def sha256(self) -> str:
        return self._metered.sha256.hexdigest()

    @property
    def bytes_read(self) -> int:
        return self._metered.bytes_read

    def __iter__(self) -> Iterator[bytes]:
        try:
            for line in self._reader:
                yield line.rstrip(b"\r\n")
        except EOFError:
            raise PipelineInputError(
                f"{self.name} ends before the gzip stream does: the file is truncated. "
                "Download it again (or point the source at a complete copy) and rerun."
            ) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise PipelineInputError(f"{self.name} is not a valid gzip file ({exc}); download it again.") from None
        except _NETWORK_ERRORS as exc:
            raise PipelineInputError(f"reading {self.name} failed part-way ({exc}); check the network and rerun.") from None


@contextlib.contextmanager
def open_source(source: str, *, param: str, desc: str) -> Iterator[SourceStream]:
    """Open a local path or http(s) URL for streaming; `param` names the key to fix in errors."""
    if is_url(source):
        raw, total = _open_url(source, param)
    else:
        path = Path(source)
        if not path.is_file():
            raise PipelineInputError(
                f"{param}: {source} does not exist or is not a file. "
                f"Point it at an existing .jsonl or .jsonl.gz file, e.g. `dvc exp run -S {param}=/abs/path/file.jsonl.gz`."
            )
        raw, total = open(path, "rb"), path.stat().st_size
    progress = tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=None, leave=False)
    metered = _Metered(raw, progress)
    buffered = io.BufferedReader(metered, buffer_size=_READ_BLOCK)
    try:
        magic = buffered.peek(2)[:2]
        reader = gzip.GzipFile(fileobj=buffered, mode="rb") if magic == _GZIP_MAGIC else buffered
        yield SourceStream(source, reader, metered)
    finally:
        progress.close()
        raw.close()


def _open_url(url: str, param: str):
    request = urllib.request.Request(url, headers={"User-Agent": "synthguard-extract"})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except _NETWORK_ERRORS as exc:
        raise PipelineInputError(
            f"{param}: cannot reach {url} ({getattr(exc, 'reason', exc)}). Without network access, copy the "
            f"file to this machine and point the stage at it: `dvc exp run -S {param}=/abs/path/to/file.jsonl.gz` "
            "or edit params.yaml (see README, 'Running offline')."
        ) from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None
