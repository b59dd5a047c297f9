"""Fixtures for the cinder_patch tests: the patched env, cinder-api, MariaDB.

The workstation Python has no cinder. ``cinder_env`` builds (once, cached)
a venv of the pinned controller packages from /usr/bin/python3 and lays
cinder_patch/ over a copy of its cinder package; code that needs cinder runs
in that env as a subprocess (the in_cinder/ modules, cinder-manage,
cinder-api).

``train_env`` does the same for Cinder Train (Python 2.7), with the Train
release tree cinder_patch/releases/train laid over the common tree. The
REST specs run against both: ``api_env``
is parametrized over the two releases, and ``cinder_api``, ``client`` and
``start_api`` follow it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.cinder_patch import cinder_env as envlib
from tests.cinder_patch import train_env as trainlib
from tests.cinder_patch.cinder_api import CinderApi, Client
from tests.cinder_patch.mariadb import MariaDB

# in_cinder/ and in_train/ import cinder: only the envs run them.
collect_ignore = ["in_cinder", "in_train"]


def _fail(error: Exception) -> None:
    pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def cinder_env() -> Iterator[envlib.CinderEnv]:
    """The cached venv plus a patched copy of its cinder package."""
    try:
        venv = envlib.build_venv()
    except envlib.EnvError as error:
        _fail(error)
    overlay = envlib.make_world_traversable_dir("cinder-overlay-")
    try:
        envlib.make_overlay(venv, overlay)
        yield envlib.CinderEnv(venv=venv, overlay=overlay)
    except envlib.EnvError as error:
        _fail(error)
    finally:
        shutil.rmtree(overlay, ignore_errors=True)


@pytest.fixture(scope="session")
def train_env() -> Iterator[envlib.CinderEnv]:
    """The cached Cinder Train venv plus a copy of its cinder with the feature for Train."""
    try:
        venv = trainlib.build_venv()
    except envlib.EnvError as error:
        _fail(error)
    overlay = envlib.make_world_traversable_dir("cinder-train-overlay-")
    try:
        yield trainlib.make_train_overlay(venv, overlay)
    except envlib.EnvError as error:
        _fail(error)
    finally:
        shutil.rmtree(overlay, ignore_errors=True)


RELEASES = {"29.0.0": "cinder_env", trainlib.RELEASE: "train_env"}


@pytest.fixture(scope="session", params=sorted(RELEASES, reverse=True),
                ids=lambda release: f"cinder-{release}")
def api_env(request: pytest.FixtureRequest) -> envlib.CinderEnv:
    """The patched env of each release the feature targets, in turn."""
    return request.getfixturevalue(RELEASES[request.param])


def _start_api(env: envlib.CinderEnv, connection: str | None = None,
               policy: dict[str, str] | None = None,
               prefix: str = "cinder-api-") -> CinderApi:
    state = envlib.make_world_traversable_dir(prefix)
    policy_file = None
    if policy is not None:
        policy_file = state / "policy.json"
        policy_file.write_text(json.dumps(policy))
    api = CinderApi(env, state, connection or
                    f"sqlite:///{state / 'state' / 'cinder.sqlite'}",
                    policy_file)
    try:
        (state / "state").mkdir(parents=True, exist_ok=True)
        api.db_sync()
        api.start()
    except envlib.EnvError as error:
        api.stop()
        shutil.rmtree(state, ignore_errors=True)
        _fail(error)
    return api


@pytest.fixture(scope="session")
def cinder_api(api_env: envlib.CinderEnv) -> Iterator[CinderApi]:
    """cinder-api on sqlite, noauth, every request admin (each release)."""
    api = _start_api(api_env)
    yield api
    api.stop()
    shutil.rmtree(api.state, ignore_errors=True)


@pytest.fixture
def client(cinder_api: CinderApi) -> Client:
    return cinder_api.client()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A running mariadbd on its own datadir, socket and port."""
    base = envlib.make_world_traversable_dir("cinder-mariadb-")
    server = MariaDB(base)
    try:
        server.start()
    except Exception as error:  # MariaDBError, or mariadbd missing
        server.stop()
        _fail(error)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def start_api_on() -> Iterator[object]:
    """Factory: start cinder-api of a given env; all stopped at the end."""
    started: list[CinderApi] = []

    def start(env: envlib.CinderEnv, connection: str | None = None,
              policy: dict[str, str] | None = None) -> CinderApi:
        api = _start_api(env, connection, policy)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()
        shutil.rmtree(api.state, ignore_errors=True)


@pytest.fixture(scope="session")
def start_api(api_env: envlib.CinderEnv, start_api_on) -> object:
    """Factory: start more cinder-api processes of ``api_env``'s release."""
    def start(connection: str | None = None,
              policy: dict[str, str] | None = None) -> CinderApi:
        return start_api_on(api_env, connection, policy)
    return start
