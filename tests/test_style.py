"""The code base passes its linter (ruff, configured in pyproject.toml)."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_ruff_finds_nothing():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "clipper_bench", "tests", "benchmarks", "model_composition"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layers_import_only_downwards():
    """import-linter's contracts in pyproject.toml: no module imports one of a layer above it."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _functions():
    for path in sorted((REPO / "clipper_bench").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(REPO), node


def test_no_function_is_longer_than_60_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions() if node.end_lineno - node.lineno + 1 > 60]
    assert not long, "split these: " + ", ".join(long)


def _public_functions(body):
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield from _public_functions(node.body)


def test_nine_in_ten_public_functions_have_a_docstring():
    nodes = [node for path in sorted((REPO / "clipper_bench").rglob("*.py"))
             for node in _public_functions(ast.parse(path.read_text()).body)]
    documented = sum(1 for node in nodes if ast.get_docstring(node))
    assert documented >= 0.9 * len(nodes), f"{documented} of {len(nodes)} public functions have a docstring"


def _named(node: ast.AST) -> str:
    """The last name of ``x``, ``a.x`` or ``a.get("x")``: what a comparison is about."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return ""


def _string_literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def test_engines_and_transports_are_compared_by_their_declarations_not_by_name():
    """No ``transport == "shm"`` or ``engine != "local"``: transports are protocol.transports.Transport
    members, engines say what they can do (``transports``, ``serves_pipelines``), so a new engine or
    transport is one module, not a hunt for string comparisons."""
    found = []
    for path in sorted((REPO / "clipper_bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                subjects = {_named(s) for s in sides}
                if subjects & {"transport", "engine"} and any(_string_literals(s) for s in sides):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
            elif isinstance(node, ast.Assign) and any(_named(t) == "transports" for t in node.targets):
                if _string_literals(node.value):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, "compare with Transport members or engine capabilities: " + ", ".join(found)


def test_models_are_asked_what_they_read_not_compared_by_name():
    """No ``model == "sleep"`` outside the models' own package: a model says what it needs
    (``ModelSpec.options``, ``needs_build``, ``uses_gpu``), so a new model is one module."""
    from clipper_bench.containers.models import model_names

    names = set(model_names())
    own = REPO / "clipper_bench" / "containers" / "models"
    found = []
    for path in sorted((REPO / "clipper_bench").rglob("*.py")):
        if own in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    set(_string_literals(side)) & names for side in [node.left, *node.comparators]):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, "ask the ModelSpec (options, needs_build, uses_gpu) instead: " + ", ".join(found)


def test_a_models_own_options_are_named_only_where_it_declares_them():
    """No ``"sleep_ms"`` in the core: a model declares its own options (``ModelSpec.options``) and
    run, serve, container, plan and pipeline files offer them from the declaration, so a model with a
    flag of its own is one module. The calibration run, which is built on the sleep model, and its
    report may name its option."""
    from clipper_bench.containers.models import model_option_names

    names = set(model_option_names())
    allowed = {REPO / "clipper_bench" / "sweep" / "calibrate.py", REPO / "clipper_bench" / "report" / "calibration.py"}
    own = REPO / "clipper_bench" / "containers" / "models"
    found = []
    for path in sorted((REPO / "clipper_bench").rglob("*.py")):
        if own in path.parents or path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            literal = isinstance(node, ast.Constant) and node.value in names
            keyword = isinstance(node, ast.keyword) and node.arg in names
            attribute = isinstance(node, ast.Attribute) and node.attr in names
            if literal or keyword or attribute:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert names and not found, "read the model's declared options instead: " + ", ".join(found)
