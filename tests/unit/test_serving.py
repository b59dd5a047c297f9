"""What "healthy" is made of: the pre-send compile, the probe, the log and the extension list.

The controller-side pieces (the compile helper, the API probe) run here
with real interpreters of the versions controllers run Cinder on: Python
2.7 (legacy controllers), 3.6 and this venv's.
"""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploy.controller.extensions import (
    extension_alias,
    failed_since_start,
    failures_in_log,
    is_extension,
    module_name,
    sent_aliases,
)
from deploy.controller.precheck import compile_check_argv, compile_input, parse_output, python_files
from deploy.openstack.smoke import Check, SmokeReport, junit_xml
from deploy.remote import script
from deploy.transport.sync import Change
from tests.support import PROJECT_ROOT, http_server

# the flags the controller-side helpers run with: today's, and the ones both Pythons accept
FLAGS = {"2.7": ("-E", "-s", "-S"), "3.6": ("-I", "-S"), "venv": ("-I", "-S")}


def interpreter(version: str) -> str:
    """A python of ``version``: $DEVLOOP_PYTHON27/36, else root's pyenv build; never skipped."""
    if version == "venv":
        return sys.executable
    env = os.environ.get("DEVLOOP_PYTHON" + version.replace(".", ""))
    candidates = [env] if env else []
    found = Path("/root/.pyenv/versions").glob(f"{version}.*/bin/python")
    candidates += [str(p) for p in sorted(found)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"no Python {version} found: set DEVLOOP_PYTHON{version.replace('.', '')} "
                f"or build it with pyenv (~/.pyenv/versions/{version}.*)")


def run_helper(version: str, files: list[tuple[str, bytes]], against: str = "",
               log_file: str = ""):
    argv = compile_check_argv(interpreter(version))
    argv[1:4] = FLAGS[version]             # the flags this python is run with
    proc = subprocess.run(argv, capture_output=True, check=True,
                          input=compile_input(files, against=against, log_file=log_file))
    return parse_output(proc.stdout.decode())


def compile_on(version: str, files: dict[str, str | bytes], tmp_path: Path) -> list[str]:
    """Run the compile helper with that python, as deploy would; return the problem lines."""
    given = [(name, text if isinstance(text, bytes) else text.encode())
             for name, text in files.items()]
    return [p.format() for p in run_helper(version, given).problems]


VERSIONS = ["2.7", "3.6", "venv"]


class TestCompileCheck:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_a_syntax_error_is_reported_as_file_line_message(self, version, tmp_path):
        problems = compile_on(version, {"api/contrib/ok.py": "A = 1\n",
                                        "api/contrib/bad.py": "A = 1\ndef broken(:\n    pass\n"},
                              tmp_path)
        assert len(problems) == 1
        assert problems[0].startswith("cinder/api/contrib/bad.py:2: ")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_valid_code_of_both_pythons_passes(self, version, tmp_path):
        code = "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\nclass A(object):\n    pass\n"
        assert compile_on(version, {"x.py": code.encode("latin-1")}, tmp_path) == []

    def test_python3_only_code_is_refused_by_a_python_2_controller(self, tmp_path):
        files = {"fstring.py": "name = 'x'\nprint(f'{name}')\n",
                 "annotations.py": "from __future__ import annotations\n"}
        assert compile_on("3.6", {"fstring.py": files["fstring.py"]}, tmp_path) == []
        problems = compile_on("2.7", files, tmp_path)
        assert [p.split(":")[0] for p in problems] == ["cinder/fstring.py", "cinder/annotations.py"]
        assert problems[0].startswith("cinder/fstring.py:2: ")
        assert "future feature annotations is not defined" in problems[1]

    def test_python_3_8_syntax_is_refused_by_python_3_6(self, tmp_path):
        assert compile_on("3.6", {"walrus.py": "if (n := 3):\n    pass\n"},
                          tmp_path)[0].startswith("cinder/walrus.py:1: ")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_the_helper_s_own_future_flags_do_not_leak_into_the_compiled_code(
            self, version, tmp_path):
        # print as a statement is valid Python 2 unless print_function leaks in
        code = "print 'hello'\n" if version == "2.7" else "x = 1\n"
        assert compile_on(version, {"p.py": code}, tmp_path) == []

    @pytest.mark.parametrize("version", VERSIONS)
    def test_null_bytes_are_a_problem_not_a_crash(self, version, tmp_path):
        problems = compile_on(version, {"nul.py": b"A = 1\x00\n"}, tmp_path)
        assert len(problems) == 1 and problems[0].startswith("cinder/nul.py")

    def test_file_contents_travel_on_stdin_so_any_size_is_checked_and_argv_holds_none(
            self, tmp_path):
        big = f"X = '{os.urandom(1_000_000).hex()}'\n".encode()     # 2 MB, incompressible
        argv = compile_check_argv(interpreter("venv"))
        assert argv[-2:] == ["-c", script("compile_check")]         # the script, no file

        result = run_helper("venv", [("big.py", big), ("bad.py", b"x = (\n")])

        assert result.compiled == 2
        assert [p.format().split(":")[0] for p in result.problems] == ["cinder/bad.py"]

    @pytest.mark.parametrize("version", VERSIONS)
    def test_odd_names_are_compiled_and_named(self, version):
        names = ["new\nline.py", "latin\udce9.py", "caf\u00e9.py", "-dash.py"]
        result = run_helper(version, [(name, b"x = (\n") for name in names])
        assert [p.path for p in result.problems] == [f"cinder/{name}" for name in names]
        assert result.problems[0].format().startswith("cinder/new\\nline.py:1: ")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_files_equal_to_the_installed_copy_are_skipped_and_the_log_is_measured(
            self, version, tmp_path):
        installed, source = tmp_path / "installed", tmp_path / "source"
        for tree in (installed, source):
            (tree / "api").mkdir(parents=True)
            (tree / "api" / "same.py").write_text("def broken(:\n")   # already there
        (installed / "api" / "edited.py").write_text("A = 1\n")
        (source / "api" / "edited.py").write_text("A = (\n")
        (source / "api" / "new.py").write_text("B = 2\n")
        log = tmp_path / "api.log"
        log.write_text("x" * 1234)
        files = [(rel, (source / rel).read_bytes())
                 for rel in ["api/edited.py", "api/new.py", "api/same.py"]]

        result = run_helper(version, files, against=str(installed), log_file=str(log))

        assert result.log_size == 1234
        assert result.compiled == 2
        assert [p.format().split(":")[:2] for p in result.problems] == [
            ["cinder/api/edited.py", "1"]]

    def test_only_changed_python_files_are_compiled(self):
        changes = [Change("new", "api/contrib/x.py"), Change("changed", "locale/x.po"),
                   Change("changed", "db/api.py")]
        assert python_files(changes) == ["api/contrib/x.py", "db/api.py"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(300)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_url():
    with http_server(_Handler) as url:
        yield url


class TestProbe:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_the_probe_runs_on_every_controller_python_and_returns_the_new_log(
            self, version, api_url, tmp_path):
        log = tmp_path / "api.log"
        log.write_text("before the restart\n")
        mark = log.stat().st_size
        with log.open("a") as handle:
            handle.write("after the restart\n")
        proc = subprocess.run([interpreter(version), *FLAGS[version], "-c", script("probe_api"),
                               api_url, "5", str(log), str(mark)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        head, _, rest = proc.stdout.partition("--log--\n")
        assert head.split()[:2] == ["answering", "300"]
        assert rest == "after the restart\n"

    @pytest.mark.parametrize("version", VERSIONS)
    def test_the_probe_reports_down_at_its_deadline(self, version):
        from tests.support import free_port

        url = f"http://127.0.0.1:{free_port()}/"
        proc = subprocess.run([interpreter(version), *FLAGS[version], "-c", script("probe_api"),
                               url, "0.3"], capture_output=True, text=True)
        assert proc.returncode == 1
        assert proc.stdout.startswith("down ")

    def test_a_log_that_was_rotated_is_read_from_its_start(self, api_url, tmp_path):
        log = tmp_path / "api.log"
        log.write_text("new file\n")
        proc = subprocess.run([sys.executable, "-c", script("probe_api"), api_url, "5", str(log),
                               "100000"], capture_output=True, text=True)
        assert proc.stdout.partition("--log--\n")[2] == "new file\n"


LOG = """\
2026-11-26 07:00:00.001 4242 INFO cinder.api.extensions [-] Loaded extension: os-hosts
2026-11-26 07:00:00.002 4242 WARNING cinder.api.extensions [-] Failed to load extension \
cinder.api.contrib.devloop_probe.Devloop_probe: boom at import
2026-11-26 07:00:00.003 4242 WARNING cinder.api.extensions [-] Failed to load extension \
cinder.api.contrib.legacy_thing.Legacy_thing: old
2026-11-26 07:00:01.000 4250 ERROR cinder.api.openstack.wsgi [req-1] Caught error
2026-11-26 07:00:01.000 4250 ERROR cinder.api.openstack.wsgi Traceback (most recent call last):
2026-11-26 07:00:01.000 4250 ERROR cinder.api.openstack.wsgi   File \
"/usr/lib/python3/site-packages/cinder/db/cluster_api.py", line 7, in get
2026-11-26 07:00:01.000 4250 ERROR cinder.api.openstack.wsgi ZeroDivisionError: division by zero
"""


class TestLogAndExtensions:
    def test_a_sent_extension_that_failed_to_load_is_a_failure_with_its_lines(self):
        found = failures_in_log(LOG, ["api/contrib/devloop_probe.py"])
        assert found.reasons == ("failed to load extension "
                                 "cinder.api.contrib.devloop_probe.Devloop_probe: boom at import",)
        assert "boom at import" in found.lines[0]
        assert found.others == ("cinder.api.contrib.legacy_thing.Legacy_thing: old",)

    def test_a_traceback_naming_a_sent_file_is_a_failure(self):
        found = failures_in_log(LOG, ["db/cluster_api.py"])
        assert found.reasons == ("traceback in cinder/db/cluster_api.py",)
        assert any("ZeroDivisionError" in line for line in found.lines)

    def test_failures_of_code_not_sent_do_not_fail_the_deploy(self):
        assert not failures_in_log(LOG, ["api/contrib/other.py", "db/other.py"])

    def test_status_counts_only_the_running_service_s_failures(self):
        assert failed_since_start(LOG, 4242) == [
            "cinder.api.contrib.devloop_probe.Devloop_probe: boom at import",
            "cinder.api.contrib.legacy_thing.Legacy_thing: old"]
        assert failed_since_start(LOG, 1111) == []

    @pytest.mark.parametrize("path, module", [
        ("api/contrib/cluster_manage.py", "cinder.api.contrib.cluster_manage"),
        ("api/contrib/__init__.py", "cinder.api.contrib"),
    ])
    def test_module_names(self, path, module):
        assert module_name(path) == module

    def test_only_modules_directly_in_contrib_are_extensions(self):
        assert is_extension("api/contrib/x.py")
        assert not is_extension("api/contrib/__init__.py")
        assert not is_extension("api/v3/x.py")

    def test_the_feature_s_alias_is_found_statically(self):
        source = PROJECT_ROOT / "cinder_patch" / "cinder"
        assert sent_aliases(source, ["api/contrib/cluster_manage.py", "db/api.py"]) == {
            "api/contrib/cluster_manage.py": "os-cluster-manage"}

    def test_alias_of_python_2_only_source_falls_back_to_its_assignment(self):
        text = ("from cinder.api import extensions\n"
                "class X(extensions.ExtensionDescriptor):\n"
                "    alias = 'os-legacy'\n"
                "    def f(self):\n        print 'py2'\n")
        assert extension_alias(text) == "os-legacy"

    def test_a_module_without_a_descriptor_has_no_alias(self):
        assert extension_alias("class X(object):\n    alias = 'no'\n") is None


class TestJunit:
    def test_one_testcase_per_check_with_time_and_failure_text(self):
        report = SmokeReport("http://127.0.0.1:8776/", [
            Check("api answers", True, "ok", 0.0123),
            Check("create", False, "HTTP 500 (expected 200/202): boom", 0.5)])
        root = ET.fromstring(junit_xml({"ctl1": report, "ctl2": "ctl2: connection refused"}))
        assert root.tag == "testsuites"
        assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
        suites = root.findall("testsuite")
        assert [s.get("name") for s in suites] == ["smoke.ctl1", "smoke.ctl2"]
        cases = suites[0].findall("testcase")
        assert [(c.get("name"), c.get("time"), c.get("classname")) for c in cases] == [
            ("api answers", "0.012", "smoke.ctl1"), ("create", "0.500", "smoke.ctl1")]
        assert cases[0].find("failure") is None
        assert cases[1].find("failure").text == "HTTP 500 (expected 200/202): boom"
        assert suites[1].find("testcase/error").text == "ctl2: connection refused"
