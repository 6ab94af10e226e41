"""Every stage's ``nessa_lib`` dependencies, computed from the import graph, and ``dvc.yaml`` kept equal to them.

A stage runs its notebook through :mod:`nessa_lib.pipeline.run`; the modules it executes are those the notebook
and the runner import, their imports, and so on, plus each package's ``__init__``. Every import statement counts,
also those inside functions (a conservative closure: a module that *might* run is a dependency). ``dvc.yaml``
lists exactly these files; ``python -m nessa_lib.pipeline.deps --write`` rewrites the lists and ``--check`` (run
by the tests) fails when they differ, so editing a module re-runs exactly the stages that import it.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from nessa_lib import paths
from nessa_lib.pipeline import layout

PACKAGE = "nessa_lib"
RUNNER = "nessa_lib.pipeline.run"
REPORT = "nessa_lib.pipeline.report"  # the `report` stage: no notebook
VALIDATE = "nessa_lib.pipeline.validate"  # the `validate` stage (the first): no notebook
#: The stages of ``dvc.yaml`` that run a module instead of a notebook, with that module.
MODULE_STAGES = {"validate": VALIDATE, "report": REPORT}


def module_file(module: str, root) -> Path | None:
    """The source file of ``module`` under ``root`` (a module or a package's ``__init__.py``), or ``None``.

    Examples
    --------
    >>> module_file("nessa_lib.paths", paths.repo_root()).name
    'paths.py'
    >>> module_file("nessa_lib.no_such_module", paths.repo_root()) is None
    True
    """
    base = Path(root).joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolve_relative(module: str | None, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    parts = current.split(".")
    keep = len(parts) - level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{module}" if module else base


def imported_modules(source: str, current: str = "", is_package: bool = False) -> set[str]:
    """Names of the ``nessa_lib`` modules (or attributes of them) that ``source`` imports, anywhere in it.

    ``from nessa_lib.x import y`` yields both ``nessa_lib.x`` and ``nessa_lib.x.y``: which of them is a module
    is decided against the files by :func:`closure`.

    Examples
    --------
    >>> sorted(imported_modules("import os\\nfrom nessa_lib import align, io\\ndef f():\\n    import nessa_lib.toy"))
    ['nessa_lib', 'nessa_lib.align', 'nessa_lib.io', 'nessa_lib.toy']
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, current, is_package)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def library_modules(root=None) -> dict[str, Path]:
    """``{module name: file}`` of every module of the package under ``root`` (packages by their ``__init__``).

    Examples
    --------
    >>> "nessa_lib.pipeline.deps" in library_modules()
    True
    """
    root = Path(root) if root is not None else paths.repo_root()
    out = {}
    for file in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = file
    return out


def import_graph(root=None) -> dict[str, set[str]]:
    """``{module: the library modules it imports}``, anywhere in it (inside functions too).

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a`` (``b`` is a name defined in
    ``a``). The parent packages Python runs first are not edges: what counts is what a module asks for.

    Examples
    --------
    >>> sorted(import_graph()["nessa_lib.pipeline.deps"])
    ['nessa_lib.paths', 'nessa_lib.pipeline.layout']
    """
    root = Path(root) if root is not None else paths.repo_root()
    modules = library_modules(root)
    graph = {}
    for module, file in modules.items():
        current, is_package = module, file.name == "__init__.py"
        found = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_relative(node.module, node.level, current, is_package)
                for a in node.names:
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        graph[module] = {m for m in found if m in modules and m != module}
    return graph


def closure(modules, root=None) -> list[str]:
    """Repo-relative source files of ``modules``, everything they import from ``nessa_lib``, and their packages.

    Examples
    --------
    >>> closure(["nessa_lib.paths"])
    ['nessa_lib/__init__.py', 'nessa_lib/paths.py']
    """
    root = Path(root) if root is not None else paths.repo_root()
    todo, seen, files = list(modules), set(), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # packages run their __init__ first
        file = module_file(module, root)
        if file is None:
            continue  # an attribute imported from a module, not a module itself
        files.add(file.relative_to(root).as_posix())
        todo.extend(imported_modules(file.read_text(), module, file.name == "__init__.py"))
    return sorted(files)


def stage_deps(stage: str, root=None) -> list[str]:
    """The ``nessa_lib`` files stage ``stage`` runs: its notebook's import closure and the runner's.

    Examples
    --------
    >>> deps = stage_deps("evaluate")
    >>> "nessa_lib/pipeline/run.py" in deps and "nessa_lib/align/__init__.py" in deps
    True
    """
    root = Path(root) if root is not None else paths.repo_root()
    if stage in MODULE_STAGES:
        return closure([MODULE_STAGES[stage]], root)
    notebook = root / layout.stage(stage).notebook
    return closure(imported_modules(notebook.read_text()) | {RUNNER}, root)


_STAGE_LINE = re.compile(r"^  ([\w-]+):\s*$")
_LIB_DEP = re.compile(r"^(\s+)- nessa_lib/\S+\s*$")


def sync_dvc_yaml(text: str, wanted: dict[str, list[str]]) -> str:
    """``dvc.yaml`` text with each stage's run of ``- nessa_lib/...`` dependency lines replaced by ``wanted``.

    Other lines (comments included) are kept as they are; a stage of ``wanted`` without such a run is an error.

    Examples
    --------
    >>> text = "stages:\\n  a:\\n    deps:\\n      - x\\n      - nessa_lib/old.py\\n    outs: []\\n"
    >>> print(sync_dvc_yaml(text, {"a": ["nessa_lib/new.py"]}), end="")
    stages:
      a:
        deps:
          - x
          - nessa_lib/new.py
        outs: []
    """
    out, stage, done = [], None, set()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _STAGE_LINE.match(line)
        if m:
            stage = m.group(1)
        dep = _LIB_DEP.match(line)
        if dep and stage in wanted:
            indent = dep.group(1)
            while i < len(lines) and _LIB_DEP.match(lines[i]):
                i += 1
            out.extend(f"{indent}- {f}" for f in wanted[stage])
            done.add(stage)
            continue
        out.append(line)
        i += 1
    missing = sorted(set(wanted) - done)
    if missing:
        raise ValueError(f"dvc.yaml: no '- nessa_lib/...' dependency lines found for stage(s) {missing}")
    return "\n".join(out) + "\n"


def check_dvc_yaml(root=None, write: bool = False) -> list[str]:
    """Compare (or, with ``write``, make) ``dvc.yaml``'s library deps equal to :func:`stage_deps`.

    Returns a list of human-readable differences (empty when in sync).
    """
    root = Path(root) if root is not None else paths.repo_root()
    file = root / "dvc.yaml"
    text = file.read_text()
    wanted = {s: stage_deps(s, root) for s in (*MODULE_STAGES, *layout.STAGES)}
    new = sync_dvc_yaml(text, wanted)
    if new == text:
        return []
    if write:
        file.write_text(new)
    import difflib

    return [ln for ln in difflib.unified_diff(text.splitlines(), new.splitlines(), "dvc.yaml", "computed",
                                              lineterm="", n=0)]


def main(argv=None) -> int:
    """``python -m nessa_lib.pipeline.deps [--write]``: check (or rewrite) dvc.yaml's library dependencies."""
    parser = argparse.ArgumentParser(prog="python -m nessa_lib.pipeline.deps", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's nessa_lib dependency lists")
    args = parser.parse_args(argv)
    diff = check_dvc_yaml(write=args.write)
    if not diff:
        print("dvc.yaml's nessa_lib dependencies match the import graph")
        return 0
    print("\n".join(diff))
    print("dvc.yaml rewritten" if args.write else "dvc.yaml is out of date: run `python -m nessa_lib.pipeline.deps --write`")
    return 0 if args.write else 1


if __name__ == "__main__":
    sys.exit(main())
