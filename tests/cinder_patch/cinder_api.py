"""Run a real cinder-api from the patched env for the REST tests.

sqlite (or any ``[database] connection``), ``auth_strategy = noauth``,
``transport_url = fake://``, one worker, its own port on 127.0.0.1. The
process is started in its own session and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.sandbox.common import free_port
from tests.cinder_patch.cinder_env import CinderEnv, EnvError

PROJECT_ID = "c1a55e7"
TOKEN = f"tester:{PROJECT_ID}"


def write_config(env: CinderEnv, state: Path, port: int, connection: str,
                 policy_file: Path | None = None) -> Path:
    """Write cinder.conf (and api-paste.ini beside it) under ``state``."""
    for sub in ("state", "lock", "log"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(env.etc / "api-paste.ini", state / "api-paste.ini")
    lines = [
        "[DEFAULT]",
        "auth_strategy = noauth",
        "osapi_volume_listen = 127.0.0.1",
        f"osapi_volume_listen_port = {port}",
        "osapi_volume_workers = 1",
        f"state_path = {state / 'state'}",
        "transport_url = fake://",
        "enabled_backends =",
        "[database]",
        f"connection = {connection}",
        "[oslo_concurrency]",
        f"lock_path = {state / 'lock'}",
    ]
    if policy_file is not None:
        lines += ["[oslo_policy]", f"policy_file = {policy_file}"]
    conf = state / "cinder.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def db_manage(env: CinderEnv, conf: Path, *args: str
              ) -> subprocess.CompletedProcess[str]:
    """Run ``cinder-manage --config-file conf db <args>``."""
    return env.run([env.bin("cinder-manage"), "--config-file", str(conf),
                    "db", *args], timeout=120)


class CinderApi:
    """A cinder-api process; ``url`` is its /v3 endpoint root."""

    def __init__(self, env: CinderEnv, state: Path, connection: str,
                 policy_file: Path | None = None) -> None:
        self.env = env
        self.state = state
        self.port = free_port()
        self.conf = write_config(env, state, self.port, connection,
                                 policy_file)
        self.log = state / "log" / "api.log"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace")
                         .splitlines()[-lines:])

    def db_sync(self) -> None:
        result = db_manage(self.env, self.conf, "sync")
        if result.returncode != 0:
            raise EnvError(f"cinder-manage db sync failed:\n{result.stderr}")

    def answers(self) -> bool:
        """True once ``/`` answers its version list (300; 200 also accepted).

        NOTE: not /healthcheck: Train's api-paste.ini has no such route.
        """
        try:
            with urllib.request.urlopen(self.base_url + "/", timeout=2) as reply:
                return reply.status == 200
        except urllib.error.HTTPError as error:
            return error.code == 300
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 60.0) -> None:
        """Start cinder-api and wait until it answers on ``/``."""
        stdout = open(self.state / "log" / "api.stdout", "wb")
        self.process = subprocess.Popen(
            [self.env.bin("cinder-api"), "--config-file", str(self.conf),
             "--log-file", str(self.log)],
            stdout=stdout, stderr=subprocess.STDOUT,
            env=self.env.environ(), start_new_session=True)
        stdout.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvError(f"cinder-api exited with {self.process.returncode}"
                               f":\n{self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.1)
        self.stop()
        raise EnvError(f"cinder-api did not answer within {timeout}s:\n"
                       f"{self.log_tail()}")

    def client(self) -> Client:
        """A Client of this API that knows its Cinder release."""
        return Client(self.base_url, release=self.env.release)

    def stop(self) -> None:
        """SIGTERM the parent (it stops its worker); SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # The session is ours: its id is the parent's PID.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


class Reply:
    """Status, headers and decoded JSON body (or None) of one request."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def error_message(self) -> str:
        """Return the message of a Cinder fault body ('' if there is none)."""
        if isinstance(self.json, dict) and len(self.json) == 1:
            fault = next(iter(self.json.values()))
            if isinstance(fault, dict):
                return str(fault.get("message", ""))
        return ""

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.raw[:300]!r}>"


class Client:
    """Minimal urllib client for /v3/{project_id}/... with noauth headers."""

    def __init__(self, base_url: str, project_id: str = PROJECT_ID,
                 token: str = TOKEN, release: str = "29.0.0") -> None:
        self.base_url = base_url
        self.project_id = project_id
        self.token = token
        #: the Cinder release serving base_url (the specs note where Train
        #: answers differently)
        self.release = release

    @property
    def train(self) -> bool:
        return self.release.startswith("15.")

    def request(self, method: str, path: str, body: object = None, *,
                raw: bytes | None = None, with_project: bool = True) -> Reply:
        prefix = f"/v3/{self.project_id}" if with_project else "/v3"
        data = raw if raw is not None else (
            None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(
            self.base_url + prefix + path, data=data, method=method,
            headers={"X-Auth-Token": self.token, "Accept": "application/json",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as reply:
                return Reply(reply.status, reply.read(), dict(reply.headers))
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.read(), dict(error.headers))

    def get(self, path: str, **kwargs: object) -> Reply:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, **kwargs: object) -> Reply:
        return self.request("POST", path, body, **kwargs)  # type: ignore[arg-type]

    def put(self, path: str, body: object = None, **kwargs: object) -> Reply:
        return self.request("PUT", path, body, **kwargs)  # type: ignore[arg-type]

    def delete(self, path: str, **kwargs: object) -> Reply:
        return self.request("DELETE", path, **kwargs)  # type: ignore[arg-type]
