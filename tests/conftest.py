"""What every spec starts from: none of the developer's own session state.

A variable in the developer's shell would make a spec read what it did not
make: ``DEVLOOP_INVENTORY`` (another inventory for every task run without
``--inventory``), ``OS_*`` (another cloud, user or password for Keystone),
``SSH_AUTH_SOCK`` (the developer's agent and its keys). They are dropped
for the whole run; a spec that needs one sets its own.

In parallel (``.ci/test`` runs the suite under pytest-xdist with
``--dist loadgroup``), each worker boots the controllers its specs use, once.
So that a controller is booted by as few workers as possible, every spec
that uses one is marked with the group of its kind (:func:`group_of`):
the whole group runs on one worker. Specs that use none are spread freely.

Nor an inherited signal disposition: a suite started in the background by
a non-interactive shell (``pytest &``) has SIGINT ignored, every CLI it
spawns inherits that, and the specs' Ctrl-C (``watch``, ``logs --follow``,
``debug``) would reach nothing. SIGINT is Python's own again for the run.
"""
from __future__ import annotations

import os
import signal

import pytest

#: the session fixtures that are one controller (or Cinder environment) each, and their group
_FIXTURE_GROUPS = {
    "rdo_controller": "rdo", "legacy_controller": "legacy",
    "devstack_controller": "devstack", "sandbox": "supervisord",
    "train_env": "cinder-train", "cinder_env": "cinder-29", "mariadb": "cinder-29",
}
#: parametrized fixtures whose value names the group
_PARAM_GROUPS = {
    "controller": str, "systemd_controller": str,
    "api_env": lambda release: "cinder-train" if release == "15.6.0" else "cinder-29",
}


def group_of(item: pytest.Item) -> str | None:
    """The worker group of a spec: the controller kind (or Cinder release) it needs, if any.

    A spec parametrized over kinds belongs to the kind of its parameter;
    otherwise the first session fixture it uses decides, the containers
    first (they cost the most to boot twice). A container kind's specs make
    two groups (the deployed feature's, and the rest), so two workers share
    its work; the quick sandbox's make one per module.
    """
    kind = _kind_of(item)
    if kind is None:
        return None
    if kind == "supervisord":
        # a sandbox boots in seconds from the machine's cached venv: one per module
        return f"{kind}-{item.path.stem}"
    if "feature_controller" in getattr(item, "fixturenames", ()):
        # the specs of the deployed feature are many and quick: a group of their own
        return f"{kind}-feature"
    return kind


def _kind_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    fixtures = getattr(item, "fixturenames", ())
    for name, group in _PARAM_GROUPS.items():
        if name in params and name in fixtures:
            return group(params[name])
    for name, group in _FIXTURE_GROUPS.items():
        if name in fixtures:
            return group
    return None


@pytest.hookimpl(tryfirst=True)     # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def _foreign(name: str) -> bool:
    return name in ("DEVLOOP_INVENTORY", "SSH_AUTH_SOCK") or name.startswith("OS_")


def pytest_configure(config: pytest.Config) -> None:
    for name in [name for name in os.environ if _foreign(name)]:
        del os.environ[name]
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
