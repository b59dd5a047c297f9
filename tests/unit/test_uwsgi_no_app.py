"""Under uWSGI a Cinder that fails to import is told from the journal, without the
per-request noise."""
from __future__ import annotations

from deploy.controller.health import _without_requests

# what devstack@c-api's journal holds after a deploy broke cinder/api/__init__.py
JOURNAL = """\
*** Starting uWSGI 2.0.28 (64bit) on [Thu Dec  3 08:40:01 2026] ***
spawned uWSGI master process (pid: 812)
Traceback (most recent call last):
  File "/opt/stack/cinder/cinder/wsgi/api.py", line 17, in <module>
    from cinder.api import microversions
  File "/opt/stack/cinder/cinder/api/__init__.py", line 1, in <module>
    raise RuntimeError('broken by a test')
RuntimeError: broken by a test
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. going in full dynamic mode ***
--- no python application found, check your startup logs for errors ---
[pid: 815|app: -1|req: -1/1] 127.0.0.1 () {32 vars in 371 bytes} [Thu Dec  3 08:40:05 2026] GET / => generated 21 bytes in 0 msecs (HTTP/1.1 500) 2 headers in 83 bytes (0 switches on core 0)
--- no python application found, check your startup logs for errors ---
[pid: 815|app: -1|req: -1/2] 127.0.0.1 () {32 vars in 371 bytes} [Thu Dec  3 08:40:05 2026] GET / => generated 21 bytes in 0 msecs (HTTP/1.1 500) 2 headers in 83 bytes (0 switches on core 0)
"""


def test_what_is_shown_is_the_load_and_its_traceback_not_each_500():
    shown = _without_requests(JOURNAL).splitlines()
    assert "RuntimeError: broken by a test" in shown
    assert shown[-1] == "*** no app loaded. going in full dynamic mode ***"
    assert not any("no python application found" in line or "=> generated" in line
                   for line in shown)
