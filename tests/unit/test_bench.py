"""The benchmark's manual side per kind: what a developer types, and how rows are reported.

The numbers come from real runs (``bench/bench.py``); these specs pin the
commands the manual side times, so that a row keeps comparing against what
a developer would type on that kind of controller.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

from deploy.sandbox import SandboxLayout
from deploy.sandbox.rdo import CLOUD_ADMIN, RdoLayout
from tests.support import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("bench", PROJECT_ROOT / "bench" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench"] = bench       # dataclasses look their module up there
_spec.loader.exec_module(bench)


def rdo_layout(tmp_path: Path) -> RdoLayout:
    layout = RdoLayout(tmp_path / "ctl", name="bench-rdo-t")
    layout.root.mkdir()
    layout.instance.address_file.write_text("10.213.7.2\n")
    return layout


def test_rdo_manual_rsync_goes_into_the_system_site_packages_over_the_instances_pinned_ssh(
        tmp_path):
    layout = rdo_layout(tmp_path)
    argv = bench.rsync_argv(bench.RdoKind(), tmp_path / "tree", layout)
    assert argv[:2] == ["rsync", "-avz"]
    assert argv[-2:] == [f"{tmp_path}/tree/",
                         "root@10.213.7.2:/usr/local/lib/python3.11/dist-packages/cinder/"]
    ssh = shlex.split(argv[argv.index("-e") + 1])
    assert ssh[:3] == ["ssh", "-p", "22"]
    assert str(layout.instance.identity_file) in ssh
    assert f"UserKnownHostsFile={layout.instance.known_hosts}" in ssh
    assert "StrictHostKeyChecking=yes" in ssh


def test_rdo_manual_restart_and_status_are_systemctl_on_the_rdo_unit_over_ssh(tmp_path):
    layout = rdo_layout(tmp_path)
    kind = bench.RdoKind()
    for action in ("restart", "status"):
        argv = bench.ssh_argv(kind, layout, kind.service(layout, action))
        assert argv[0] == "ssh" and argv[-2] == "root@10.213.7.2"
        assert argv[-1] == f"systemctl {action} openstack-cinder-api.service"


def test_rdo_inventory_names_each_controllers_keystone_apart():
    # each controller's own entry names the same cloud (its own clouds.yaml's
    # admin); no container is needed to see that ours names them apart
    kind = bench.RdoKind()
    layouts = kind.ours + kind.manual
    entries = [kind.named_apart(layout, {"address": "192.0.2.1", "cloud": CLOUD_ADMIN})
               for layout in layouts]
    assert len({entry["cloud"] for entry in entries}) == len(entries)
    assert all(entry["address"] == "192.0.2.1" for entry in entries)


def test_supervisord_manual_restart_is_the_sandboxes_own_supervisorctl(tmp_path):
    layout = SandboxLayout(tmp_path / "ctl", 22199, 18899, name="t")
    kind = bench.SupervisordKind()
    argv = bench.ssh_argv(kind, layout, kind.service(layout, "restart"))
    assert argv[:3] == ["ssh", "-p", "22199"] and argv[-2] == "root@127.0.0.1"
    assert shlex.split(argv[-1]) == ["supervisorctl", "-c", str(layout.supervisor_conf),
                                     "restart", "cinder-api"]


def test_report_groups_the_rows_and_the_steps_per_kind(capsys):
    rows = [bench.Row(kind, "edit to serving", "invoke loop", "by hand", [2.0], [4.0], 0.7)
            for kind in ("supervisord", "rdo")]
    steps = {"supervisord": bench.Steps(), "rdo": bench.Steps()}
    steps["rdo"].add("loop", "restart", 1.5)
    steps["rdo"].from_output("loop", "W: ctl: full restart instead of a fast one: "
                                     "a migration changed\n")
    args = argparse.Namespace(runs=1, kind="all", write=None, tree="whole", only=None)
    bench.report(rows, steps, [bench.SupervisordKind(), bench.RdoKind()], args, (0.0,))
    text = capsys.readouterr().out
    assert "| supervisord | edit to serving |" in text
    assert "| rdo | edit to serving | invoke loop | 2.000 s | by hand | 4.000 s | 0.50 |" in text
    rdo_section = text[text.index("### rdo"):text.index("## Raw seconds")]
    assert "**loop**: restart 1.500" in rdo_section
    assert "full restart instead of a fast one (a migration changed): 1 run(s)" in rdo_section
    assert "### supervisord" not in text      # no steps there: no empty section


def test_supervisord_only_rows_on_rdo_are_refused_with_one_line():
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "bench.py"),
                           "--kind", "rdo", "--only", "list"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "run on the supervisord kind only" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_growth_rows_say_whether_ours_grows_less_than_rsync_from_whole_tree_to_largest(
        capsys):
    rows = [bench.Row("supervisord", f"growth: one changed file of {n} files, no restart",
                      "invoke deploy --no-restart", "rsync -avz -e ssh", [ours], [base], None)
            for n, ours, base in (("20", 0.40, 0.30), ("1,525", 0.42, 0.40),
                                  ("6,100", 0.45, 0.70))]
    args = argparse.Namespace(runs=1, kind="supervisord", write=None, tree="whole", only=None)
    bench.report(rows, {"supervisord": bench.Steps()}, [bench.SupervisordKind()], args, (0.0,))
    text = capsys.readouterr().out
    assert ("| supervisord | growth from the whole tree to the largest (medians) | ours "
            "| +0.030 s | rsync | +0.300 s | — | ours grows less (met) |") in text
    assert "edits one file of a whole Cinder checkout" in text


def test_the_whole_tree_is_the_installed_package_without_bytecode_and_the_feature_over_it(
        tmp_path):
    installed = tmp_path / "site" / "cinder"
    (installed / "api" / "__pycache__").mkdir(parents=True)
    (installed / "api" / "__init__.py").write_text("UPSTREAM = 1\n")
    (installed / "api" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (installed / "devloop_bench").mkdir()
    (installed / "devloop_bench" / "probe.py").write_text("LEFT = 'by an earlier run'\n")
    os.utime(installed / "api" / "__init__.py", ns=(10**18, 10**18))

    class Installed(bench.SupervisordKind):
        def cinder_dir(self, layout):
            return installed

    tree = bench.whole_tree(Installed(), None, tmp_path / "checkout" / "cinder")

    assert (tree / "api" / "__init__.py").stat().st_mtime_ns == 10**18   # rsync sees it alike
    assert not (tree / "api" / "__pycache__").exists() and not (tree / "devloop_bench").exists()
    assert (tree / "api" / "contrib" / "cluster_manage.py").is_file()      # the feature


def test_write_replaces_the_figures_and_keeps_what_follows_the_mark():
    previous = f"# old figures\n| a | 1 |\n\n{bench.KEEP_MARK}\n\n## Chaos run\n0 lost\n"
    written = bench.with_kept_sections("# new figures\n| a | 2 |\n", previous)
    assert written == f"# new figures\n| a | 2 |\n\n{bench.KEEP_MARK}\n\n## Chaos run\n0 lost\n"
    assert bench.with_kept_sections("# new\n", "# old, no mark\n") == "# new\n"


def test_the_results_file_marks_where_its_hand_written_sections_start():
    text = (Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md").read_text()
    kept = text[text.index(bench.KEEP_MARK):]
    assert "## Chaos run" in kept and "## Notes on this run" in kept


def test_every_row_the_command_line_offers_has_one_measure_and_they_run_in_file_order():
    named = [name for names, _ in bench.MEASURES for name in sorted(names)]
    assert sorted(named) == sorted(bench.ROWS + bench.EXTRA_ROWS)      # each exactly once
    order = [measure.__name__ for _, measure in bench.MEASURES]
    assert order == ["no_restart", "growth", "loop", "watch_rows", "fleet", "fleet_vs_one",
                     "task_list", "health"]
