"""The container machinery's pure parts: names, the nspawn command, the cache key."""
from __future__ import annotations

from pathlib import Path

from deploy.sandbox.nspawn import Instance, TreeRecipe, nspawn_argv


def test_every_kernel_name_is_unique_per_instance_root_and_fits_the_kernels_limits():
    a, b = Instance(Path("/tmp/run-1/rdo")), Instance(Path("/tmp/run-2/rdo"))
    assert len({a.netns, b.netns}) == len({a.veth, b.veth}) == len({a.cgroup, b.cgroup}) == 2
    assert all(len(i.veth) <= 15 for i in (a, b))          # IFNAMSIZ - 1
    assert a.cgroup.startswith("sysd-")


def test_nspawn_boots_without_machined_in_the_instances_namespace():
    instance = Instance(Path("/tmp/run-1/rdo"))
    argv = nspawn_argv(instance)
    assert argv[:2] == ["systemd-nspawn", "--boot"]
    assert {"--register=no", "--keep-unit", "--console=read-only"} <= set(argv)
    assert f"--network-namespace-path=/run/netns/{instance.netns}" in argv
    assert f"--directory={instance.merged}" in argv


def test_the_cache_key_changes_with_anything_that_built_the_tree():
    def build(tree: Path) -> None:
        pass

    base = TreeRecipe("k", build, packages=("python3",), inputs=("pins 1",))
    assert base.digest == TreeRecipe("k", build, packages=("python3",), inputs=("pins 1",)).digest
    assert base.digest != TreeRecipe("k", build, packages=("python3",), inputs=("pins 2",)).digest
    assert base.digest != TreeRecipe("k", build, packages=("gcc",), inputs=("pins 1",)).digest
    assert base.archive.name == f"k-{base.digest}.tar.zst"
