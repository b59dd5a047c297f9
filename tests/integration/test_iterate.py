"""invoke loop and invoke watch: only the steps a change needs, on every kind of controller."""
from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support import Watcher, invoke

pytestmark = pytest.mark.integration


def extension_source(alias: str) -> str:
    """A contrib extension whose alias shows that the new code is serving."""
    return (
        "from cinder.api import extensions\n\n\n"
        f"class Devloop_{alias.replace('-', '_')}(extensions.ExtensionDescriptor):\n"
        '    """Proof that a deploy is serving."""\n\n'
        f"    name = 'Devloop{alias}'\n"
        f"    alias = '{alias}'\n"
        "    updated = '2026-11-25T00:00:00+00:00'\n")


def extension_status(controller, alias: str) -> int:
    access = controller.api()       # noauth, or the admin's Keystone token
    # (with the project in the path: Train routes nothing without it)
    url = f"{access.base_url}/v3/{access.project_id}/extensions/{alias}"
    request = urllib.request.Request(url, headers=access.headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def write_extension(source: Path, alias: str) -> Path:
    name = f"devloop_{alias.replace('-', '_')}.py"
    path = source / "api" / "contrib" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(extension_source(alias))
    return path


@pytest.fixture
def hosts(controller_hosts) -> Path:
    return controller_hosts


@pytest.fixture
def cinder_dir(controller) -> Path:
    return controller.cinder_dir


@pytest.fixture
def cleanup_extensions(controller):
    """Remove the test extensions from the controller afterwards."""
    yield
    for path in (controller.cinder_dir / "api" / "contrib").glob("devloop_*.py"):
        path.unlink()


class TestLoop:
    def test_a_changed_file_is_deployed_restarted_and_served(self, controller, hosts, source,
                                                             cleanup_extensions):
        alias = f"dl-{uuid.uuid4().hex[:6]}"
        write_extension(source, alias)
        before = controller.service_pid()

        result = invoke("loop", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "--> sbx: deploy (" in result.stderr and "1 file(s) sent" in result.stderr
        assert "--> sbx: check database (" in result.stderr
        assert "--> sbx: restart (" in result.stderr
        assert "db-sync" not in result.stderr          # no migration changed, DB current
        assert controller.service_pid() != before
        # a cold restart: the way to a fork instead is offered
        assert "fast restart is off on sbx: `invoke fast-restart on --host sbx`" in result.stderr
        assert extension_status(controller, alias) == 200
        assert result.stdout.strip().splitlines()[-1].startswith("sbx: 1 file(s), restarted in ")

    def test_nothing_changed_means_nothing_restarted(self, controller, hosts, source):
        (source / "devloop_it").mkdir()
        (source / "devloop_it" / f"same_{uuid.uuid4().hex[:6]}.py").write_text("A = 1\n")
        assert invoke("loop", "--inventory", str(hosts)).returncode == 0
        before = controller.service_pid()

        result = invoke("loop", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "deploy (" in result.stderr and "nothing changed" in result.stderr
        assert "restart skipped: nothing changed" in result.stderr
        assert controller.service_pid() == before
        last = result.stdout.strip().splitlines()[-1]
        assert last.startswith("sbx: 0 file(s), not restarted in ")

    def test_a_database_behind_the_migrations_is_synced(self, controller, hosts, source):
        controller.empty_database()   # behind: empty
        before = controller.service_pid()

        result = invoke("loop", "--inventory", str(hosts))

        assert result.returncode == 0, result.stderr
        assert "check database (" in result.stderr
        assert "behind the newest migration" in result.stderr
        assert "--> sbx: db-sync (" in result.stderr
        assert f"{controller.empty_revision} -> {controller.newest_migration()}" in result.stderr
        assert controller.service_pid() != before   # the database changed: restarted


class TestWatch:
    def test_a_save_is_deployed_and_served_failures_are_survived_and_ctrl_c_stops(
            self, controller, hosts, source, cinder_dir, cleanup_extensions):
        alias = f"dlw-{uuid.uuid4().hex[:6]}"
        with Watcher("--inventory", str(hosts), "--debounce", "200", "--timeout", "20") as watch:
            watch.read_until("watching")
            write_extension(source, alias)
            ok = watch.read_until(f"sbx: api/contrib/devloop_{alias.replace('-', '_')}.py -> ")
            assert "-> OK: 1 file(s), restarted in" in ok
            assert extension_status(controller, alias) == 200

            broken = source / "api" / "__init__.py"   # replaces Cinder's own: breaks start
            original = (cinder_dir / "api" / "__init__.py").read_bytes()
            broken.write_text("raise RuntimeError('broken by a test')\n")
            failed = watch.read_until("sbx: api/__init__.py -> ")
            assert "-> FAILED:" in failed
            # watch rolled the broken save back: the previous code serves
            assert (cinder_dir / "api" / "__init__.py").read_bytes() == original

            broken.write_bytes(original)                # the developer fixes it
            fixed = watch.read_until("sbx: api/__init__.py -> ")
            assert "-> OK: 1 file(s), restarted" in fixed
            assert extension_status(controller, alias) == 200

            assert watch.interrupt() == 0
            watch.read_until("--> watch: stopped", timeout=5)
