"""Plain values for the audit hook: event arguments read as str/bytes/int/list/tuple/dict only (a candidate's
object is never called: its __fspath__ or __eq__ would run inside the hook, where nothing is audited), and paths
resolved without os.path (whose module globals a candidate could replace). Sealed with the rules by audit.install."""
from __future__ import annotations

import os

_lstat, _readlink, _open, _read, _close, _O_RDONLY = os.lstat, os.readlink, os.open, os.read, os.close, os.O_RDONLY
_ENVIRON = os.environ  # compared by identity only (Popen(env=os.environ)); never called


def within(path: str | None, root: str) -> bool:
    return path is not None and (path == root or path.startswith(root + "/"))


def as_text(value) -> str | None:
    if type(value) is str:
        return value
    if type(value) is bytes:
        return value.decode("utf-8", "surrogateescape")
    return None


def as_texts(values) -> list | None:
    if type(values) in (str, bytes):
        values = [values]
    if type(values) not in (list, tuple):
        return None
    texts = [as_text(v) for v in values]
    return None if None in texts else texts


def as_environment(env) -> dict | None:
    """A child's environment as {name: value}; None when it is not something plain (the hook never calls a
    candidate's mapping). env=None and os.environ itself mean the worker's own environment."""
    if env is None or env is _ENVIRON:
        return {}
    if type(env) is dict:
        items = list(dict.items(env))
    elif type(env) in (list, tuple):  # fork_exec's [b"NAME=value", ...]
        items = [(as_text(e) or "=").partition("=")[::2] for e in env]
    else:
        return None
    variables = {}
    for name, value in items:
        name, value = as_text(name), as_text(value)
        if name is None or value is None:
            return None
        variables[name] = value
    return variables


def read_file_text(path: str, limit: int = 1 << 20) -> str | None:
    try:
        fd = _open(path, _O_RDONLY)
    except OSError:
        return None
    try:
        data = _read(fd, limit)
    finally:
        _close(fd)
    return data.decode("utf-8", "replace")


def real_path(path, cwd: str) -> str | None:
    """realpath without os.path (whose module globals a candidate could replace): absolute, symlinks followed."""
    path = as_text(path)
    if path is None:
        return None
    if not path.startswith("/"):
        path = cwd + "/" + path
    pending, resolved, links = path.split("/")[::-1], "", 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = resolved[:resolved.rfind("/")] if resolved else ""
            continue
        candidate = resolved + "/" + name
        try:
            mode = _lstat(candidate).st_mode
        except OSError:
            resolved = candidate
            continue
        if mode & 0o170000 != 0o120000:
            resolved = candidate
            continue
        links += 1
        if links > 40:
            return None
        target = _readlink(candidate)
        if target.startswith("/"):
            resolved = ""
        pending.extend(target.split("/")[::-1])
    return resolved or "/"
