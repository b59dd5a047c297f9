"""What a service's unit or program really runs: its argv, user, environment and directory.

``invoke debug --service`` runs that command in the foreground, so it is
read from the service manager's own definition, never from a process (a
process can rewrite its own ``/proc/PID/cmdline``) nor from anything the
service user can write:

* systemd: the unit's ``ExecStart``, ``User``, ``Environment`` and
  ``WorkingDirectory`` as systemd itself parsed them, through D-Bus
  (``busctl get-property``: each argument a quoted string, so one with a
  space stays one argument, where ``systemctl show`` joins them with spaces);
* supervisord: the program's section of ``supervisor_config``, which must
  be root's and writable by no one else, split as supervisord splits it
  (``shlex.split`` of ``command``, supervisord's ``KEY="value",...`` for
  ``environment``).

The argv is run as a list (never through a shell), as the service user.
Parsers are pure functions; :func:`read_command` asks the controller.
"""
from __future__ import annotations

import configparser
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping

from deploy.base.errors import DebugError
from deploy.transport.commands import Remote

_SYSTEMD = "org.freedesktop.systemd1"
_PYTHON = re.compile(r"^python[0-9.]*$")


@dataclass(frozen=True)
class ServiceCommand:
    """The command a service's unit or program runs."""

    argv: tuple[str, ...]
    user: str                       # "": the definition names none
    env: Mapping[str, str] = field(default_factory=dict)
    directory: str = ""
    source: str = ""                # where it was read, for the developer

    @property
    def entry(self) -> str:
        """The script the command runs: ``argv[0]``, or the script a python in argv[0] runs.

        ``/usr/bin/cinder-volume ...`` -> ``/usr/bin/cinder-volume``;
        ``/usr/bin/python2 -s /usr/bin/cinder-volume ...`` -> ``/usr/bin/cinder-volume``.
        """
        if not _PYTHON.match(posixpath.basename(self.argv[0])):
            return self.argv[0]
        for arg in self.argv[1:]:
            if not arg.startswith("-"):
                return arg
        return self.argv[0]


def bus_path(unit: str) -> str:
    """systemd's D-Bus object path of ``unit``: every byte but a letter or a digit (and a
    leading digit) as ``_xx``. ``devstack@c-vol.service`` ->
    ``/org/freedesktop/systemd1/unit/devstack_40c_2dvol_2eservice``."""
    out = []
    for i, byte in enumerate(unit.encode("utf-8")):
        char = chr(byte)
        if (char.isascii() and char.isalpha()) or (i > 0 and char.isascii() and char.isdigit()):
            out.append(char)
        else:
            out.append(f"_{byte:02x}")
    return "/org/freedesktop/systemd1/unit/" + "".join(out)


def busctl_argv(unit: str) -> list[str]:
    """``busctl get-property org.freedesktop.systemd1 <unit's path>
    org.freedesktop.systemd1.Service ExecStart User Environment WorkingDirectory``."""
    return ["busctl", "get-property", _SYSTEMD, bus_path(unit), f"{_SYSTEMD}.Service",
            "ExecStart", "User", "Environment", "WorkingDirectory"]


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11,
            "\\": 92, '"': 34, "'": 39}


def busctl_tokens(line: str) -> list[str | bytes]:
    """One line of ``busctl get-property``: bare words as str, quoted strings as bytes
    (busctl C-escapes them: ``\\"``, ``\\n``, ``\\xNN``, octal ``\\NNN`` per byte).

    Raises:
        ValueError: an unterminated string or a bad escape.
    """
    tokens: list[str | bytes] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
        elif line[i] == '"':
            i += 1
            raw = bytearray()
            while True:
                if i >= n:
                    raise ValueError("unterminated string")
                char = line[i]
                if char == '"':
                    i += 1
                    break
                if char != "\\":
                    raw += char.encode("utf-8")
                    i += 1
                    continue
                nxt = line[i + 1:i + 2]
                if nxt in _ESCAPES:
                    raw.append(_ESCAPES[nxt])
                    i += 2
                elif nxt == "x" and re.match(r"[0-9a-fA-F]{2}", line[i + 2:i + 4]):
                    raw.append(int(line[i + 2:i + 4], 16))
                    i += 4
                elif re.match(r"[0-7]{3}", line[i + 1:i + 4]):
                    raw.append(int(line[i + 1:i + 4], 8))
                    i += 4
                else:
                    raise ValueError(f"bad escape at {i}")
            tokens.append(bytes(raw))
        else:
            end = line.find(" ", i)
            end = n if end < 0 else end
            tokens.append(line[i:end])
            i = end
    return tokens


def _text(token: str | bytes) -> str:
    if not isinstance(token, bytes):
        raise ValueError(f"expected a string, got {token!r}")
    return token.decode("utf-8", "surrogateescape")


def parse_busctl(text: str, unit: str) -> ServiceCommand:
    """Read :func:`busctl_argv`'s four lines (``a(sasbttttuii) ...``, ``s ...``, ``as ...``,
    ``s ...``) into a command: the first ``ExecStart`` (its path run with its argv's
    arguments), the user, the environment and the working directory.

    Raises:
        DebugError: not that shape, or not exactly one ExecStart.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        if len(lines) != 4:
            raise ValueError(f"{len(lines)} lines, expected 4")
        start, user, env, directory = (busctl_tokens(line) for line in lines)
        if start[0] != "a(sasbttttuii)":
            raise ValueError(f"ExecStart has the type {start[0]!r}")
        if int(str(start[1])) != 1:
            raise DebugError(f"{unit} has {int(str(start[1]))} ExecStart lines; debug "
                             f"--service runs a unit with exactly one")
        path = _text(start[2])
        count = int(str(start[3]))
        args = [_text(token) for token in start[4:4 + count]]
        if not path or not args:
            raise ValueError("an empty ExecStart")
        if user[0] != "s" or env[0] != "as" or directory[0] != "s":
            raise ValueError("unexpected types")
        pairs = [_text(token) for token in env[2:2 + int(str(env[1]))]]
        where = _text(directory[1]).lstrip("-")
    except (ValueError, IndexError) as exc:
        raise DebugError(f"cannot read what {unit} runs from busctl ({exc}): "
                         f"{text.strip()[:300] or 'no output'}") from None
    return ServiceCommand((path, *args[1:]), _text(user[1]),
                          dict(pair.split("=", 1) for pair in pairs if "=" in pair),
                          where, f"{unit} (ExecStart)")


def supervisord_environment(value: str) -> dict[str, str]:
    """A program's ``environment``, as supervisord reads it (``dict_of_key_value_pairs``):
    ``HOME="/var/lib/cinder",MALLOC_ARENA_MAX="1"``.

    Raises:
        ValueError: not ``KEY=VALUE`` pairs separated by commas.
    """
    lexer = shlex.shlex(value, posix=False)
    lexer.wordchars += "/.+-():"
    tokens = list(lexer)
    found: dict[str, str] = {}
    for i in range(0, len(tokens), 4):
        pair = tokens[i:i + 3]
        if len(pair) != 3 or pair[1] != "=" or (i + 3 < len(tokens) and tokens[i + 3] != ","):
            raise ValueError(f"unexpected {value!r}")
        found[pair[0]] = pair[2].strip("'\"")
    return found


def parse_program(text: str, config: str, program: str) -> ServiceCommand:
    """``[program:NAME]`` of a supervisord config: its command, user, environment, directory.

    ``%(here)s``, ``%(program_name)s``, ``%(group_name)s`` and ``%(process_num)d`` are
    expanded as supervisord does; any other ``%(...)`` (supervisord's own
    environment) is an error rather than a guess.

    Raises:
        DebugError: no such program, or a value that cannot be read.
    """
    parser = configparser.RawConfigParser(strict=False)
    section = f"program:{program}"
    try:
        parser.read_string(text, source=config)
    except configparser.Error as exc:
        raise DebugError(f"cannot read {config}: {exc}") from None
    if not parser.has_section(section) or not parser.has_option(section, "command"):
        raise DebugError(f"{config} has no [{section}] with a command (a program in an "
                         f"included file is not read)")
    names = {"here": posixpath.dirname(config), "program_name": program,
             "group_name": program, "process_num": 0, "host_node_name": ""}

    def value(key: str) -> str:
        raw = parser.get(section, key) if parser.has_option(section, key) else ""
        try:
            return raw % names
        except (KeyError, ValueError, TypeError) as exc:
            raise DebugError(f"{config}: [{section}] {key} = {raw}: cannot expand it here "
                             f"({exc!r})") from None

    try:
        argv = shlex.split(value("command"))
        env = supervisord_environment(value("environment")) if value("environment") else {}
    except ValueError as exc:
        raise DebugError(f"{config}: [{section}]: {exc}") from None
    if not argv:
        raise DebugError(f"{config}: [{section}] has an empty command")
    return ServiceCommand(tuple(argv), value("user"), env, value("directory"),
                          f"{config} [{section}]")


def read_command(remote: Remote, manager_kind: str, unit: str) -> ServiceCommand:
    """What ``unit`` (a systemd unit, or a supervisord program) runs on the controller.

    Raises:
        DebugError: it cannot be read, or (supervisord) its config is not root's alone.
    """
    if manager_kind != "supervisord":
        result = remote.run(busctl_argv(unit), check=False)
        if result.exited != 0:
            raise DebugError(f"{remote.name}: cannot read what {unit} runs: "
                             f"{' '.join(busctl_argv(unit))} failed (exit {result.exited}): "
                             f"{(result.stderr or result.stdout).strip()[-300:] or 'no output'}")
        try:
            return parse_busctl(result.stdout, unit)
        except DebugError as exc:
            raise DebugError(f"{remote.name}: {exc}") from None
    config = remote.controller.supervisor_config or ""
    # -L: the file supervisord reads, wherever a link points; it must be root's alone
    stat = remote.run(["stat", "-L", "-c", "%u %a", "--", config], check=False)
    fields = stat.stdout.split()
    if stat.exited != 0 or len(fields) != 2:
        raise DebugError(f"{remote.name}: cannot read supervisor_config {config}: "
                         f"{(stat.stderr or stat.stdout).strip() or 'no output'}")
    if fields[0] != "0" or int(fields[1], 8) & 0o022:
        raise DebugError(f"{remote.name}: {config} is not root's alone (owner uid {fields[0]}, "
                         f"mode {fields[1]}); debug runs no command another user can change")
    result = remote.run(["cat", "--", config], check=False)
    if result.exited != 0:
        raise DebugError(f"{remote.name}: cannot read {config}: {result.stderr.strip()}")
    try:
        return parse_program(result.stdout, config, unit)
    except DebugError as exc:
        raise DebugError(f"{remote.name}: {exc}") from None
