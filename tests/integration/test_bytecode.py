"""No stale bytecode: what a deploy or rollback writes or removes, it writes or removes
with its compiled files, so the controller's own Python imports what the records say.

On every kind of controller (Python 3.11 in a venv, RDO's system Python 3,
the legacy Python 2.7); a file replaced, through both deploy paths: the one
call and rsync (a tree holding a symlink goes through rsync). The module is imported as
root between the steps, as ``cinder-manage`` run by hand would, which
writes its ``.pyc`` (Python 2, beside it) or ``__pycache__`` entry (Python 3).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support import invoke

pytestmark = pytest.mark.integration

PATHS = ("one call", "rsync")


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def force(path: str, source: Path, tag: str) -> None:
    """Make the deploy of ``source`` go ``path``'s way."""
    if path == "rsync":
        (source / f"devloop_bc_link_{tag}.txt").symlink_to("__init__.py")


def import_as_root(controller, module: str, show: str = "") -> tuple[int, str]:
    """Import ``cinder.<module>`` with the controller's Python, as root, writing bytecode.

    Returns the exit code and what it printed (its stderr if it failed).
    (This machine's environment asks Python not to write any: that is unset.)
    """
    code = f"import cinder.{module} as m; print({show or 'm.__file__'})"
    result = controller.run(["sh", "-c", 'cd / && exec env -u PYTHONDONTWRITEBYTECODE "$@"',
                             "sh", controller.python, "-c", code])
    # (cinder's own import may warn on stderr: eventlet's deprecation)
    return result.returncode, (result.stdout if result.returncode == 0 else result.stderr).strip()


def compiled(cinder_dir: Path, stem: str) -> list[Path]:
    """Every compiled file of ``stem`` (a path without ``.py``) under the cinder package."""
    where = cinder_dir / stem
    beside = [where.with_name(where.name + ext) for ext in (".pyc", ".pyo")]
    cached = list((where.parent / "__pycache__").glob(f"{where.name}.*.py[co]"))
    return [p for p in beside + cached if p.exists()]


def deploy(hosts: Path, *extra: str) -> None:
    result = invoke("deploy", "--inventory", str(hosts), "--no-restart", *extra)
    assert result.returncode == 0, result.stderr


def rollback(hosts: Path) -> str:
    result = invoke("rollback", "--inventory", str(hosts), "--no-restart")
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_rolled_back_module_cannot_be_imported_from_its_leftover_bytecode(
        controller, controller_hosts, source, tag):
    # (a rollback is the same whichever way the deploy went)
    package = f"devloop_bc_{tag}"
    (source / package).mkdir()
    (source / package / "__init__.py").write_text("")
    (source / package / "mod.py").write_text("VALUE = 'deployed'\n")
    cinder_dir = controller.cinder_dir
    deploy(controller_hosts)
    code, out = import_as_root(controller, f"{package}.mod", "m.VALUE")
    assert (code, out) == (0, "deployed")
    assert compiled(cinder_dir, f"{package}/mod")        # the import wrote its bytecode

    stderr = rollback(controller_hosts)

    assert "compiled file(s)" in stderr
    code, out = import_as_root(controller, f"{package}.mod")
    assert code != 0 and "No module named" in out, out
    assert not (cinder_dir / package).exists()           # its __pycache__ went too


@pytest.mark.parametrize("path", PATHS)
def test_a_file_replaced_with_the_same_size_and_time_serves_its_new_bytes_then_its_old(
        controller, controller_hosts, source, tag, path):
    # same size, same mtime: Python would take the compiled other version for this one
    name = f"devloop_bc_{tag}"
    module = source / f"{name}.py"
    module.write_text("VALUE = 'one'\n")
    force(path, source, tag)
    deploy(controller_hosts)
    assert import_as_root(controller, name, "m.VALUE") == (0, "one")
    stamp = module.stat().st_mtime_ns
    module.write_text("VALUE = 'two'\n")
    os.utime(module, ns=(stamp, stamp))

    deploy(controller_hosts, "--checksum")          # only the bytes differ

    assert import_as_root(controller, name, "m.VALUE") == (0, "two")
    rollback(controller_hosts)
    assert import_as_root(controller, name, "m.VALUE") == (0, "one")
    rollback(controller_hosts)
    code, out = import_as_root(controller, name)
    assert code != 0 and "No module named" in out, out
    assert not compiled(controller.cinder_dir, name)
