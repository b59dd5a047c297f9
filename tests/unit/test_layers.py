"""The layers of ``deploy/``: imports run one way, no circles, each folder says what it is.

``lint-imports`` checks the contracts in pyproject.toml (layers top to
bottom, ``deploy/remote/`` standalone, no circle between siblings); the
circle check below also covers a package and its own modules, which the
sibling contract leaves out. A new upward import fails here.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.support import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
LAYERS = sorted(p.parent.name for p in DEPLOY.glob("*/__init__.py"))


def test_the_import_contracts_are_kept():
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")),
                             "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"Contracts: 3 kept, 0 broken", result.stdout), result.stdout[-2000:]


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith("deploy"):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for module in sorted(graph.modules):
        if module.startswith("deploy") and module not in index:
            visit(module)
    return found


def test_no_module_of_deploy_imports_itself_through_others():
    graph = grimp.build_graph("deploy", cache_dir=None)
    assert _circles(graph) == []


def test_a_circle_would_be_found():
    graph = grimp.ImportGraph()
    for importer, imported in [("deploy.a", "deploy.b"), ("deploy.b", "deploy.c"),
                               ("deploy.c", "deploy.a"), ("deploy.c", "deploy.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert _circles(graph) == [["deploy.a", "deploy.b", "deploy.c"]]


@pytest.mark.parametrize("layer", LAYERS)
def test_each_folder_says_what_lives_there_and_what_it_may_import(layer):
    doc = ast.get_docstring(ast.parse((DEPLOY / layer / "__init__.py").read_text())) or ""
    assert len(doc.splitlines()) >= 2, f"deploy/{layer}/__init__.py needs a docstring"
    assert "import" in doc, f"deploy/{layer}/__init__.py must say what it may import"


def test_every_module_of_deploy_sits_in_a_layer_folder():
    loose = sorted(p.name for p in DEPLOY.glob("*.py") if p.name != "__init__.py")
    assert loose == []


def test_the_design_docs_layout_table_names_every_folder_and_module():
    design = (PROJECT_ROOT / "docs" / "design.md").read_text()
    layout = design[design.index("## Layout"):]
    end = layout.find("\n## ", 1)
    layout = layout if end < 0 else layout[:end]
    for layer in LAYERS:
        assert f"`deploy/{layer}/`" in layout, layer
        modules = sorted(p.stem for p in (DEPLOY / layer).rglob("*.py")
                         if p.name != "__init__.py")
        missing = [m for m in modules if f"`{m}`" not in layout]
        assert missing == [], f"deploy/{layer}/: {missing} not in docs/design.md's Layout"


SCRIPTS = sorted(p.stem for p in (DEPLOY / "remote").glob("*.py") if p.name != "__init__.py")
PARTS = sorted(p.stem for p in (DEPLOY / "remote" / "parts").glob("*.py")
               if p.name != "__init__.py")


@pytest.mark.parametrize("version", ["2.7", "3.6"])
@pytest.mark.parametrize("name", SCRIPTS)
def test_a_controller_script_is_sent_whole_with_its_parts_and_compiles_on_the_oldest_pythons(
        name, version):
    from deploy.remote import script
    from tests.unit.test_serving import interpreter

    text = script(name)
    assert "# devloop-include:" not in text
    check = "import sys; compile(sys.stdin.read(), sys.argv[1], 'exec')"
    result = subprocess.run([interpreter(version), "-c", check, f"{name}.py"], input=text,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("part", PARTS)
def test_a_shared_part_is_written_once_and_sent_with_each_script_that_needs_it(part):
    from deploy.remote import script

    users = [name for name in SCRIPTS
             if f"# devloop-include: {part}\n" in (DEPLOY / "remote" / f"{name}.py").read_text()]
    assert len(users) >= 2, f"parts/{part}.py is used by {users}: keep it in that script"
    body = (DEPLOY / "remote" / "parts" / f"{part}.py").read_text().strip()
    assert all(body in script(name) for name in users)
