"""The library's layers: every import (lazy ones inside functions included) goes down the stack, never up or
sideways, and no import cycle exists.

    helpers < data < encoders | align < evaluation < deployment < stages < pipeline

``encoders`` and ``align`` are siblings that never import each other; stage modules import the domain packages and
``stages.schema``, never another stage. A new module must be placed in a layer here, on purpose.
"""

import pytest

from nessa_lib.pipeline import deps

# (rank, group): a module may import another of a lower rank, or of its own group.
HELPERS = {"nessa_lib", "nessa_lib.paths", "nessa_lib.io", "nessa_lib.checks", "nessa_lib.batches",
           "nessa_lib.parallel", "nessa_lib.devices", "nessa_lib.cpu_kernels", "nessa_lib.losses", "nessa_lib.plots", "nessa_lib.toy",
           "nessa_lib.embeddings"}
PACKAGES = [  # (prefix, rank, group)
    ("nessa_lib.data", 1, "data"),
    ("nessa_lib.encoders", 2, "encoders"),
    ("nessa_lib.zoo", 2, "encoders"),
    ("nessa_lib.align", 2, "align"),
    ("nessa_lib.evaluation", 3, "evaluation"),
    ("nessa_lib.deployment", 4, "deployment"),
    ("nessa_lib.migrate", 4, "deployment"),
    ("nessa_lib.chain", 4, "deployment"),  # chains of migrations: beside migrate, which applies them
    ("nessa_lib.plan", 4, "deployment"),  # a team's learning curve: a tool for planning an upgrade
    ("nessa_lib.stages.schema", 5, "stages.schema"),
    ("nessa_lib.stages", 6, None),  # each stage module is its own group: stages never import each other
    ("nessa_lib.pipeline", 7, "pipeline"),
]
GRAPH = deps.import_graph()


def layer(module: str) -> tuple[int, str]:
    if module in HELPERS:
        return 0, "helpers"
    for prefix, rank, group in PACKAGES:
        if module == prefix or module.startswith(prefix + "."):
            return rank, group or module
    raise AssertionError(f"{module} is in no layer: place it in tests/test_layers.py")


def test_every_module_has_a_layer():
    for module in GRAPH:
        layer(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down(module):
    rank, group = layer(module)
    bad = []
    for target in sorted(GRAPH[module]):
        t_rank, t_group = layer(target)
        if not (t_rank < rank or t_group == group):
            bad.append(f"{target} (layer {t_group})")
    assert not bad, f"{module} (layer {group}) imports up or sideways: {bad}"


def _cycles(graph: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_cycle():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle():
    """The check above can fail: a hand-made graph with a cycle through a lazy import is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_layer_rule_refuses_an_upward_import(monkeypatch):
    """The rule above can fail: an evaluation module importing a stage is refused."""
    monkeypatch.setitem(GRAPH, "nessa_lib.evaluation.metrics", {"nessa_lib.stages.evaluate"})
    with pytest.raises(AssertionError, match="imports up or sideways"):
        test_imports_only_go_down("nessa_lib.evaluation.metrics")
    monkeypatch.setitem(GRAPH, "nessa_lib.align.fitting", {"nessa_lib.encoders.config"})
    with pytest.raises(AssertionError, match="imports up or sideways"):
        test_imports_only_go_down("nessa_lib.align.fitting")
