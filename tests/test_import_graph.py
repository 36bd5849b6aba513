"""No import circle among clipper_bench's modules: imports run one way.

The graph is grimp's (import-linter's own), so it counts every import: at the top of a module,
inside a function, and under ``if TYPE_CHECKING``. A circle hidden in a function is still a circle.
"""

from __future__ import annotations

from itertools import pairwise

import grimp

# Circles allowed for now (each with why it is there); the test fails on any other circle and on
# any module joining one of these. Delete an entry when its circle is gone.
KNOWN: set[frozenset[str]] = set()  # circles allowed for now, each with why; none today


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of more than one module (no module imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def describe(graph: grimp.ImportGraph, component: set[str]) -> str:
    """One circle through ``component``, each step with the line that imports."""
    first = min(component)
    back = next(m for m in sorted(graph.find_modules_that_directly_import(first)) if m in component)
    chain = [*graph.find_shortest_chain(importer=first, imported=back), first]  # back imports first
    steps = []
    for importer, imported in pairwise(chain):
        detail = graph.get_import_details(importer=importer, imported=imported)[0]
        steps.append(f"  {importer} -> {imported}  (line {detail['line_number']}: {detail['line_contents']})")
    return "\n".join(steps)


def test_no_module_imports_back_into_a_circle():
    graph = grimp.build_graph("clipper_bench", include_external_packages=False)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    circles = [c for c in strongly_connected(edges) if frozenset(c) not in KNOWN]
    assert not circles, "import circles among clipper_bench modules:\n" + "\n\n".join(
        describe(graph, c) for c in circles)


def test_the_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(edges) == [{"a", "b", "c"}]
