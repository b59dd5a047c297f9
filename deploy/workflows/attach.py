"""``invoke debug --attach``: debugpy in the serving cinder-api, the IDE attached.

The session is ``invoke debug``'s (``deploy/workflows/debug.py``, the guard on the
controller restores the service on Ctrl-C, a dropped connection or a kill
of the tool), with three more things:

1. debugpy is brought from this machine (:mod:`deploy.controller.debugpy_wheels`) over
   the task's SSH connection and unpacked beside Cinder, in a directory of
   the session's own (``remote/debugpy_unpack.py``) that the guard removes
   at the end with debugpy's adapter (ended by PID);
2. the hook starts debugpy in the API worker on the controller's loopback,
   and :func:`deploy.transport.port_forward.forwarded` brings that port to
   ``127.0.0.1:<--port>`` here;
3. the VS Code ``launch.json`` entry that attaches is written (or printed
   with ``--print-config``): ``pathMappings`` map the source tree deploy
   sends that controller onto its installed ``cinder/`` package (for a
   common tree with a release tree laid over it, each file of the two onto
   its place there: debugpy tries every directory mapping before any file
   mapping, so two roots onto one package would show one layer's files
   under the other's name).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from deploy.base import output
from deploy.base.errors import DebugError, UsageError
from deploy.base.inventory import Controller, Inventory
from deploy.controller.debugpy_wheels import debugpy_version, wheel_for
from deploy.controller.facts import cinder_python
from deploy.remote import script
from deploy.transport.commands import STDLIB_ONLY, Remote, tail
from deploy.transport.layout import laid_out
from deploy.transport.port_forward import forwarded

DEFAULT_PORT = 5678


@dataclass(frozen=True, slots=True)
class AttachOptions:
    """What ``--attach`` asks for: the local port and where the launch.json goes."""

    inventory: Inventory
    port: int = DEFAULT_PORT
    launch_json: Path | None = None


#: (local path, its place on the controller): a tree's root or one file
PathMapping = tuple[str, str]


def launch_entry(name: str, port: int, mappings: Sequence[PathMapping]) -> dict[str, Any]:
    """One VS Code attach configuration (the Python Debugger extension's ``debugpy``)."""
    return {
        "name": f"cinder-api on {name} (devloop)",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": "127.0.0.1", "port": port},
        "justMyCode": False,
        "pathMappings": [{"localRoot": local, "remoteRoot": remote}
                         for local, remote in mappings],
    }


def launch_document(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "0.2.0", "configurations": list(entries)}


def _read_launch_json(path: Path) -> dict[str, Any]:
    """The launch.json at ``path`` (an empty one if there is none).

    Raises:
        DebugError: the file is not plain JSON (VS Code allows comments: then
            paste the entry from ``--print-config`` by hand).
    """
    if not path.exists():
        return launch_document([])
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(document.get("configurations", []), list)
    except (ValueError, AssertionError, AttributeError):
        raise DebugError(f"{path} is not plain JSON with a configurations list (comments?); "
                         f"paste the entry from invoke debug --print-config instead") from None
    return dict(document)


def writable_launch_json(path: Path) -> Path:
    """``path`` if a launch.json can be merged there; checked before any controller changes.

    It must be a plain-JSON launch.json this process can rewrite, or not
    exist yet in a directory that is, or can be made, writable here.

    Raises:
        UsageError: a directory, or a place where nothing can be written.
        DebugError: an existing file that is not plain JSON.
    """
    refused = f"--launch-json {path}"
    if path.is_dir():
        raise UsageError(f"{refused}: is a directory; name the file (e.g. {path / 'launch.json'})")
    try:
        if path.exists():
            _read_launch_json(path)
            with path.open("r+b"):
                pass
            return path
        nearest = path.parent
        while not nearest.exists() and nearest != nearest.parent:
            nearest = nearest.parent
        if not nearest.is_dir():
            raise UsageError(f"{refused}: {nearest} is not a directory")
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        raise UsageError(f"{refused}: cannot write there ({exc.strerror or exc})") from None
    return path


def merge_launch_json(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """Put ``entries`` into the launch.json at ``path``, replacing those of the same name.

    Raises:
        DebugError: the file is not plain JSON (see :func:`_read_launch_json`).
    """
    document = _read_launch_json(path)
    names = {entry["name"] for entry in entries}
    kept = [c for c in document.get("configurations", []) if c.get("name") not in names]
    document["configurations"] = kept + list(entries)
    document.setdefault("version", "0.2.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=4) + "\n")


def path_mappings(remote: Remote, inventory: Inventory) -> list[PathMapping]:
    """The local tree deploy sends this controller onto its installed cinder package.

    A layered tree maps file by file, each onto its layer's file (the one
    the controller runs).
    """
    from deploy.controller.manifest import ManifestRefused
    from deploy.workflows.deployment import fitting, locate_for

    located = locate_for(remote, inventory)
    try:
        chosen = fitting(remote, inventory, located)
    except ManifestRefused:
        chosen = inventory
    return mappings_for(chosen, located.cinder_dir)


def mappings_for(chosen: Inventory, installed: str) -> list[PathMapping]:
    """``chosen``'s source (as :func:`deploy.workflows.deployment.fitting` returns it) onto
    the package at ``installed``: its root, or each file of each layer."""
    from deploy.controller.layers import winning_files

    if chosen.layers:
        files = winning_files([layer.resolve() for layer in chosen.layers], chosen.excludes)
        return [(str(local), f"{installed.rstrip('/')}/{rel}")
                for rel, local in sorted(files.items())]
    source = chosen.source
    local = str(source) if chosen.source_host is not None else str(Path(source).resolve())
    return [(local, installed)]


def describe_mappings(mappings: Sequence[PathMapping]) -> str:
    """The mappings in a line: the root's, or how many files."""
    if len(mappings) == 1:
        return f"{mappings[0][0]} -> {mappings[0][1]}"
    return f"{len(mappings)} files of the layered tree -> their places under the package"


def print_config(inventory: Inventory, controllers: Sequence[Controller], port: int) -> None:
    """Print the launch.json for ``controllers`` (ports ``port``, ``port + 1`` ...).

    Raises:
        UsageError: the last of those ports would be past 65535.
    """
    if port + len(controllers) - 1 > 65535:
        raise UsageError(f"--port {port}: {len(controllers)} controllers need ports {port} to "
                         f"{port + len(controllers) - 1}, past 65535; pick a lower --port")
    entries = []
    for offset, controller in enumerate(controllers):
        remote = Remote.open(laid_out(controller))
        try:
            mappings = path_mappings(remote, inventory)
        finally:
            remote.close()
        entries.append(launch_entry(controller.name, port + offset, mappings))
    output.result(json.dumps(launch_document(entries), indent=4))


def choose_wheel(remote: Remote) -> Path:
    """The debugpy wheel for the controller's Python and machine (fetched here if need be).

    Called before anything on the controller is stopped.

    Raises:
        DebugError: no wheel fits and pip cannot fetch one.
    """
    from deploy.controller.facts import locate

    version = locate(remote).python_version
    result = remote.run([cinder_python(remote), *STDLIB_ONLY, "-c",
                         "import platform; print(platform.machine())"], check=False)
    machine = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    try:
        python = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        python = ()
    if len(python) != 2 or not machine:
        raise DebugError(f"{remote.name}: cannot tell the Python version and machine of "
                         f"{cinder_python(remote)} ({version!r}, {machine!r})")
    wheel = wheel_for((python[0], python[1]), machine)
    output.detail(f"debugpy {debugpy_version(python)} for Python {python[0]}.{python[1]} "
                  f"({machine}): {wheel}")
    return wheel


def unpack_debugpy(remote: Remote, wheel: Path) -> dict[str, Any]:
    """Send ``wheel`` to the controller for this session; ``{"dir", "files", "port"}``.

    Raises:
        DebugError: the controller could not unpack it.
    """
    parent = f"{remote.controller.state_dir}/debug"
    dialogue = remote.dialogue([cinder_python(remote), *STDLIB_ONLY, "-c", script("debugpy_unpack"),
                                parent], timeout=120)
    dialogue.readline()           # its Python and machine: the wheel was chosen already
    output.detail(f"sending {wheel.name} ({wheel.stat().st_size // 1024} KiB) over the SSH "
                  f"connection")
    result = dialogue.finish(wheel.read_bytes())
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {}
    if "error" in answer or "dir" not in answer:
        raise DebugError(f"{remote.name}: cannot unpack debugpy: "
                         f"{answer.get('error') or tail(result.stderr + result.stdout, 5)}")
    output.detail(f"{answer['files']} files in {answer['dir']} (removed when the session ends)")
    return answer


@contextlib.contextmanager
def attach_session(remote: Remote, options: AttachOptions,
                   wheel: Path) -> Iterator[dict[str, Any]]:
    """debugpy on the controller, its port forwarded here, the launch.json written.

    Yields the guard's ``attach`` settings (``{"dir", "port"}``).

    Raises:
        DebugError: see :func:`unpack_debugpy`; the local port is taken.
    """
    mappings = path_mappings(remote, options.inventory)
    unpacked = unpack_debugpy(remote, wheel)
    transport = remote.conn.client.get_transport()
    if transport is None:
        raise DebugError(f"{remote.name}: the SSH connection is closed")
    with forwarded(transport, int(unpacked["port"]), options.port) as port:
        entry = launch_entry(remote.name, port, mappings)
        if options.launch_json is not None:
            merge_launch_json(options.launch_json, [entry])
            output.detail(f"launch.json: {options.launch_json} ({entry['name']!r})")
        output.detail(f"attach the IDE to 127.0.0.1:{port} (forwarded to the controller's "
                      f"127.0.0.1:{unpacked['port']}); pathMappings "
                      f"{describe_mappings(mappings)}")
        yield {"dir": unpacked["dir"], "port": int(unpacked["port"])}
