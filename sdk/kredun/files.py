"""Files and directories as values: `File`, `Dir` and their staging to a job's local disk.

A `File` is a path plus a hash of what is there: by default its path, size and
modification time (cheap: one `stat`), its content on request (`ContentFile`), and an S3
object's ETag. The hash is taken when the value is first hashed or pickled and travels
with it, so a File hashes the same in a `process` worker or a Pod as where it was made.

Because a File's hash is part of the argument hash of every call it is passed to, an
edited input re-runs exactly the calls that take it. A cached result holding a File
(or Dir) whose path no longer matches its hash — an output deleted or changed since the
job ran — is stale (see kredun.validity), so the job that made it runs again.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from typing import IO, Any

from .errors import FileError
from .hashing import hash_parts
from .validity import note_external, note_restored

MISSING = "missing"  # the hash part of a path with nothing there


class LocalFileSystem:
    """Paths on the machine (or volume) the code runs on."""

    name = "local"

    def open(self, path: str, mode: str, **kwargs: Any) -> IO:
        if any(flag in mode for flag in "wax"):
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
        return open(path, mode, **kwargs)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def stamp(self, path: str) -> str:
        """What changes when the file does: size and modification time (ns)."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return MISSING
        return f"{info.st_size}:{info.st_mtime_ns}"

    def content_stamp(self, path: str) -> str:
        digest = hashlib.sha1()
        try:
            with open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return MISSING
        return digest.hexdigest()

    def list_files(self, path: str, hidden: bool = False) -> list[tuple[str, str | None]]:
        """Every file under a directory, recursively, sorted: (path, stamp or None).

        The files `path/**` matches, as in redun: hidden names are skipped (unless `hidden`)
        and linked directories followed, so a Dir holds and is hashed by the same files."""
        pattern = os.path.join(_glob.escape(path), "**")
        found = _glob.glob(pattern, recursive=True, include_hidden=hidden)
        return [(item, None) for item in sorted(found) if os.path.isfile(item)]

    def glob(self, pattern: str) -> list[str]:
        """Matching paths, directories included (`samples/*` finds sample directories)."""
        return sorted(_glob.glob(pattern, recursive=True))

    def mkdir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rmdir(self, path: str, recursive: bool) -> None:
        if not os.path.isdir(path):
            return
        if recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)

    def copy(self, source: str, target: str) -> None:
        """Copy within the local disk (a remote filesystem handles its own transfers)."""
        directory = os.path.dirname(target)
        if directory:
            os.makedirs(directory, exist_ok=True)
        shutil.copyfile(source, target)


_LOCAL = LocalFileSystem()
_SCHEMES = ("a local path", "file://", "s3://")


def filesystem_of(path: str) -> Any:
    """The filesystem a path belongs to: local, or S3 for `s3://` (boto3, imported on use)."""
    scheme, separator, _ = path.partition("://")
    if not separator or scheme == "file":
        return _LOCAL
    if scheme == "s3":
        from .s3files import s3_filesystem

        return s3_filesystem()
    raise FileError(f"path {path!r}: unsupported scheme {scheme}:// (valid: {', '.join(_SCHEMES)})")


def _local_path(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _path_text(path: Any, what: str) -> str:
    if isinstance(path, File | Dir):
        return path.path
    try:
        text = os.fspath(path)
    except TypeError:
        raise FileError(f"{what} path must be a string or os.PathLike, not {path!r}") from None
    if not isinstance(text, str) or not text:
        raise FileError(f"{what} path must be a non-empty string, not {path!r}")
    return text


def copy_path(source: str, target: str) -> None:
    """Copy one file between any two supported filesystems."""
    source_fs, target_fs = filesystem_of(source), filesystem_of(target)
    if source_fs is _LOCAL and target_fs is _LOCAL:
        _LOCAL.copy(_local_path(source), _local_path(target))
    else:  # the remote filesystem handles uploads, downloads and copies within itself
        remote = target_fs if source_fs is _LOCAL else source_fs
        remote.copy(_local_path(source), _local_path(target))


def glob_file(pattern: str) -> list[str]:
    """Paths matching a glob pattern (`**` spans directories), sorted; locally directories
    match too, as in redun (S3 has none)."""
    return filesystem_of(pattern).glob(_local_path(pattern))


class _PathValue:
    """What File and Dir share: a path, and a hash of what is there taken when the value is
    first hashed, which is its identity (pickled with it, compared on equality)."""

    kind = ""
    path: str
    _hash: str | None

    def _current_hash(self) -> str:
        raise NotImplementedError

    @property
    def hash(self) -> str:
        """The hash taken when this value was first hashed (or last written through it)."""
        if self._hash is None:
            self._hash = self._current_hash()
        return self._hash

    def update_hash(self) -> None:
        self._hash = self._current_hash()

    def __kredun_hash__(self) -> str:
        return self.hash

    def __reduce__(self) -> tuple:
        note_external(self)
        return (_restore, (type(self), self.path, self.hash))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _PathValue)
            and other.path == self.path
            and other.hash == self.hash
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path}, hash={self.hash[:8]})"


class File(_PathValue):
    """A file at a local path or `s3://bucket/key`, hashed by what is there."""

    kind = "File"
    by_content = False

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = _path_text(path, type(self).__name__)
        self._fs = filesystem_of(self.path)
        self._hash: str | None = None

    # -- identity --------------------------------------------------------------------------

    def _current_hash(self) -> str:
        path = _local_path(self.path)
        stamp = self._fs.content_stamp(path) if self.by_content else self._fs.stamp(path)
        return hash_parts(self.kind, [self._fs.name, self.path, stamp])

    def stale_reason(self) -> str | None:
        """Why this value no longer describes the file at its path, or None."""
        if self._current_hash() == self._hash:
            return None
        change = "changed" if self.exists() else "was deleted"
        return f"{self.kind.lower()} {self.path} {change} since it was cached"

    # -- contents --------------------------------------------------------------------------

    def open(self, mode: str = "r", encoding: str | None = None, **kwargs: Any) -> Any:
        """A stream on the file; closing a stream opened for writing updates the hash."""
        if encoding is not None:
            kwargs["encoding"] = encoding
        stream = self._fs.open(_local_path(self.path), mode, **kwargs)
        if not any(flag in mode for flag in "wax+"):
            return stream
        return _HashOnClose(stream, self.update_hash)

    def read(self, mode: str = "r", encoding: str | None = None) -> str | bytes:
        with self.open(mode, encoding) as stream:
            return stream.read()

    def readlines(self, mode: str = "r", encoding: str | None = None) -> list:
        with self.open(mode, encoding) as stream:
            return stream.readlines()

    def write(
        self, data: str | bytes, mode: str | None = None, encoding: str | None = None
    ) -> None:
        """Write `data` (text or bytes), replacing the file's content."""
        mode = mode or ("wb" if isinstance(data, bytes | bytearray) else "w")
        with self.open(mode, encoding) as stream:
            stream.write(data)

    def touch(self) -> None:
        """Create the file if missing, else mark it modified."""
        if self._fs is _LOCAL and self.exists():
            os.utime(_local_path(self.path))
            self.update_hash()
        else:
            self.write(self.read("rb") if self.exists() else b"")

    def exists(self) -> bool:
        return self._fs.exists(_local_path(self.path))

    def isfile(self) -> bool:
        return self.exists() and not self.isdir()

    def isdir(self) -> bool:
        return self._fs.isdir(_local_path(self.path))

    def size(self) -> int:
        return self._fs.size(_local_path(self.path))

    def remove(self) -> None:
        self._fs.remove(_local_path(self.path))
        self.update_hash()

    def copy_to(self, target: File | str, skip_if_exists: bool = False) -> File:
        """Copy to another path (any filesystem); returns the target File, hashed anew."""
        if not isinstance(target, File):
            target = type(self)(target)
        if not (skip_if_exists and target.exists()):
            copy_path(self.path, target.path)
        target.update_hash()
        return target

    def basename(self) -> str:
        return os.path.basename(self.path)

    def dirname(self) -> str:
        return os.path.dirname(self.path)

    def stage(self, local: str | os.PathLike | None = None) -> StagingFile:
        """Pair this (remote) file with a path on the job's disk, for `script()`: inputs
        are copied there before the command runs, outputs copied back after."""
        local_path = _path_text(local, "local") if local is not None else self.basename()
        if local_path.endswith("/"):
            local_path += self.basename()
        return StagingFile(type(self)(local_path), self)


class ContentFile(File):
    """A File hashed by its bytes: touching it without changing it re-runs nothing."""

    kind = "ContentFile"
    by_content = True


class _HashOnClose:
    """A writable stream that rehashes its File when closed (once)."""

    def __init__(self, stream: IO, on_close: Callable[[], None]) -> None:
        self._stream = stream
        self._on_close: Callable[[], None] | None = on_close

    def close(self) -> None:
        self._stream.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def __enter__(self) -> _HashOnClose:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        return iter(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Dir(_PathValue):
    """A directory (an S3 prefix), hashed by its listing: every file under it and each
    file's hash. Iterating yields its files, recursively, in path order."""

    kind = "Dir"
    file_class: type[File] = File

    def __init__(self, path: str | os.PathLike) -> None:
        text = _path_text(path, type(self).__name__)
        self.path = text.rstrip("/") or text
        self._fs = filesystem_of(self.path)
        self._hash: str | None = None

    def _listing(self, hidden: bool = False) -> list[File]:
        files = []
        for path, stamp in self._fs.list_files(_local_path(self.path), hidden):
            prefix = "file://" if self.path.startswith("file://") else ""
            item = self.file_class(prefix + path)
            if stamp is not None and not self.file_class.by_content:
                item._hash = hash_parts(item.kind, [self._fs.name, item.path, stamp])
            files.append(item)
        return files

    def _current_hash(self, files: list[File] | None = None) -> str:
        files = self._listing() if files is None else files
        return hash_parts(self.kind, [self._fs.name, self.path, *(f.hash for f in files)])

    def stale_reason(self) -> str | None:
        if self._current_hash() == self._hash:
            return None
        return f"directory {self.path} changed since it was cached"

    def __iter__(self) -> Iterator[File]:
        files = self._listing()
        if self._hash is None:
            self._hash = self._current_hash(files)
        return iter(files)

    def files(self) -> list[File]:
        return list(self)

    def file(self, relative: str) -> File:
        """The File at a path relative to this directory."""
        return self.file_class(f"{self.path}/{relative.lstrip('/')}")

    def rel_path(self, path: str) -> str:
        if self._fs is _LOCAL:
            return os.path.relpath(path, self.path)
        return path[len(self.path) + 1 :]

    def exists(self) -> bool:
        return self._fs.isdir(_local_path(self.path))

    def mkdir(self) -> None:
        self._fs.mkdir(_local_path(self.path))
        self.update_hash()

    def rmdir(self, recursive: bool = False) -> None:
        self._fs.rmdir(_local_path(self.path), recursive)
        self.update_hash()

    def copy_to(
        self, target: Dir | str, skip_if_exists: bool = False, include_hidden: bool = False
    ) -> Dir:
        """Copy every file to the same relative path under `target` (any filesystem); hidden
        files only with `include_hidden` (staging for a script copies the whole tree)."""
        if not isinstance(target, Dir):
            target = type(self)(target)
        for item in self._listing(include_hidden):
            item.copy_to(target.file(self.rel_path(item.path)), skip_if_exists)
        target.update_hash()
        return target

    def stage(self, local: str | os.PathLike | None = None) -> StagingDir:
        name = os.path.basename(self.path)
        local_path = _path_text(local, "local") if local is not None else name
        return StagingDir(type(self)(local_path), self)


class ContentDir(Dir):
    """A Dir whose files are hashed by their bytes."""

    kind = "ContentDir"
    file_class = ContentFile


def _restore(cls: type[File] | type[Dir], path: str, value_hash: str) -> File | Dir:
    """Unpickle a File or Dir with the hash it was pickled with; restored as part of a cached
    result, it reports the result stale when its path no longer matches that hash."""
    restored = cls.__new__(cls)
    restored.path = path
    restored._fs = filesystem_of(path)
    restored._hash = value_hash
    note_restored(restored)
    return restored


class _Staging:
    """A remote File/Dir paired with a local path. Hashed by both paths only: as an
    output, the remote's current state says nothing about what the job will write."""

    # Options of the copies staging makes: see StagingDir.
    copy_options: dict[str, Any] = {}

    def __init__(self, local: Any, remote: Any) -> None:
        self.local = local
        self.remote = remote

    def __kredun_hash__(self) -> str:
        local, remote = self.local, self.remote
        parts = [local.kind, local.path, remote.kind, remote.path]
        return hash_parts(type(self).__name__, parts)

    def __reduce__(self) -> tuple:
        # Paths only: the local side names a place on some job's disk, and what is at that
        # path here says nothing about whether a result holding the staging is valid.
        local, remote = self.local, self.remote
        return (_restore_staging, (type(self), type(local), local.path, type(remote), remote.path))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.local.path, other.remote.path) == (
            self.local.path, self.remote.path,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.local.path, self.remote.path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(local={self.local.path}, remote={self.remote.path})"

    def stage(self) -> Any:
        """Copy the remote to the local path (an input); returns the local value."""
        if self.local.path == self.remote.path:
            return self.local
        return self.remote.copy_to(self.local, **self.copy_options)

    def unstage(self) -> Any:
        """Copy the local path to the remote (an output); returns the remote value."""
        if self.local.path == self.remote.path:
            self.remote.update_hash()
            return self.remote
        return self.local.copy_to(self.remote, **self.copy_options)


class StagingFile(_Staging):
    """`File(remote).stage(local)`."""


class StagingDir(_Staging):
    """`Dir(remote).stage(local)`. Staging copies the whole tree, hidden files included, as
    redun's `cp -r` does: a tool may need them even though the Dir's hash leaves them out."""

    copy_options = {"include_hidden": True}


def _restore_staging(
    cls: type, local_class: type, local: str, remote_class: type, remote: str
) -> _Staging:
    return cls(local_class(local), remote_class(remote))
