"""Run a command with a Pod's volumes at their mountPaths, in a private mount namespace.

The local kubelet runs containers as host processes, so there is no container filesystem to
mount volumes into. Instead it starts this script (stdlib only: it runs before anything of the
repository is importable) as root:

    python mountns.py MOUNTS.json [--keep PATH ...] -- COMMAND ARGS...

MOUNTS.json lists ``{"source": host path, "target": mountPath, "readOnly": bool}``. The script
unshares its mount namespace (private propagation, so nothing leaks to the host), makes each
missing mount point inside an overlay of its nearest existing ancestor (the host's directories
stay untouched), bind-mounts every source onto its target, then execs the command. A process
that reads ``/var/run/secrets/kubernetes.io/serviceaccount/token`` or ``/etc/kredun`` thus
finds what a kubelet would have mounted there.

A container image would bring its own interpreter and code; here they are host paths (the
virtualenv, the checkout), which a volume may cover (an emptyDir on /tmp hides a checkout
under /tmp). Each ``--keep`` path that a volume covers is bind-mounted back where it was.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile

_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


class MountError(Exception):
    """A mount the Pod needs could not be made."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise MountError(f"{what}: {os.strerror(errno)}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    result = _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data))
    _check(result, f"mount {source} on {target}")


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _make_mount_point(target: str, is_dir: bool, scratch: str, overlaid: set[str]) -> None:
    """Create ``target`` without writing to the host: in an overlay of its nearest ancestor."""
    if os.path.lexists(target):
        return
    ancestor = _nearest_existing(target)
    if ancestor == "/":
        raise MountError(f"cannot make mount point {target}: no directory below / to overlay")
    if ancestor not in overlaid:
        upper = tempfile.mkdtemp(prefix="upper-", dir=scratch)
        work = tempfile.mkdtemp(prefix="work-", dir=scratch)
        options = f"lowerdir={ancestor},upperdir={upper},workdir={work}"
        _mount("overlay", ancestor, "overlay", 0, options)
        overlaid.add(ancestor)
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):  # only the inode is needed, as a bind target
            pass


def enter(mounts: list[dict[str, object]], scratch: str, keep: list[str] | None = None) -> None:
    """Unshare the mount namespace and make ``mounts``; see the module doc."""
    _check(_libc.unshare(_CLONE_NEWNS), "unshare the mount namespace")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
    # Sources are opened before anything is mounted (a mount on /tmp may hide them after),
    # and after unsharing: a bind source must be a mount of this namespace.
    opened = [(os.open(str(m["source"]), os.O_PATH), m) for m in mounts]
    # Outermost first: a kept directory may hold another (a checkout and its virtualenv).
    kept_paths = sorted({os.path.realpath(p) for p in keep or [] if os.path.isdir(p)}, key=len)
    kept = [(os.open(path, os.O_PATH), path) for path in kept_paths]
    overlaid: set[str] = set()
    by_depth = sorted(opened, key=lambda item: str(item[1]["target"]).count("/"))
    for fd, mount in by_depth:
        target = os.path.realpath(str(mount["target"]))
        _make_mount_point(target, os.path.isdir(f"/proc/self/fd/{fd}"), scratch, overlaid)
    for fd, mount in by_depth:
        target = os.path.realpath(str(mount["target"]))
        _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC, None)
        if mount.get("readOnly"):
            _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)
        os.close(fd)
    for fd, path in kept:
        if not os.path.isdir(path):  # a volume covers it
            # The mount point goes into the covering volume (the Pod's own, writable): the
            # scratch directory for overlays may itself be covered by now.
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
        os.close(fd)


def main(argv: list[str]) -> None:
    if "--" not in argv or argv.index("--") < 1 or len(argv) < argv.index("--") + 2:
        sys.exit("usage: mountns.py MOUNTS.json [--keep PATH ...] -- COMMAND [ARGS...]")
    split = argv.index("--")
    spec_path, options, command = argv[0], argv[1:split], argv[split + 1 :]
    if len(options) % 2 or any(flag != "--keep" for flag in options[0::2]):
        sys.exit(f"mountns.py: unknown options {options} (valid: --keep PATH)")
    with open(spec_path) as spec:
        mounts = json.load(spec)
    try:
        enter(mounts, os.path.dirname(os.path.abspath(spec_path)), options[1::2])
    except (MountError, OSError) as error:
        sys.exit(f"mounting the Pod's volumes failed: {error}")
    try:
        os.execvp(command[0], command)
    except OSError as error:
        sys.exit(f"failed to start container process: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])
