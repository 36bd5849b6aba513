"""The docs: the site builds with ``mkdocs build --strict`` (no broken link or anchor, no page left
out of the navigation), the generated CLI page lists every flag ``--help`` does, and the README stays
a short front door whose test command is the one CI runs."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clipper_bench.cli import main
from tests.conftest import REPO

HOOKS = REPO / "docs" / "hooks"
README_MAX_LINES = 200


def _hook(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_in_strict_mode(tmp_path: Path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--config-file",
         str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cli_page = (site / "cli" / "index.html").read_text()
    assert 'id="clipper-bench-run"' in cli_page and "--max_rate_under_p99_ms" in cli_page
    assert "<!-- readme -->" not in (site / "index.html").read_text()


def _help(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(argv)
    return out.getvalue()


def _flags_in_help(text: str) -> set[str]:
    """The option strings of ``--help``'s option list (lines that start with a flag), not flags
    that help texts merely mention."""
    flags = set()
    for line in text.splitlines():
        stripped = line.lstrip()
        if line.startswith("  ") and stripped.startswith("-"):
            names = re.split(r"\s{2,}", stripped, maxsplit=1)[0]
            flags.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", names))
    return flags


def _section(page: str, command: str) -> str:
    start = page.index(f"## clipper-bench {command} ")
    end = page.find("\n## ", start + 1)
    return page[start:] if end < 0 else page[start:end]


def test_the_cli_page_lists_every_flag_of_every_command():
    page = _hook("cli_reference").cli_reference()
    commands = list(_hook("cli_reference").commands())
    assert {"run", "serve", "report", "pipeline", "plan", "baseline", "build-models", "container"} <= set(commands)
    missing = []
    for command in commands:
        section = _section(page, command)
        flags = _flags_in_help(_help([command, "--help"]))
        assert "--help" in flags
        missing += [f"{command} {flag}" for flag in sorted(flags) if f"`{flag}`" not in section]
    assert not missing, f"flags in --help but not in the CLI page: {missing}"
    assert {"--help", "--version"} <= _flags_in_help(_help(["--help"]))


def test_the_readme_is_short_and_runs_the_tests_as_ci_does():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    ci = (REPO / ".ci" / "run").read_text()
    command = "./setup_env.sh --test && .venv/bin/python -m pytest -q"
    assert command in ci.splitlines()
    assert command in readme.splitlines()


def test_the_readmes_links_to_docs_exist():
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    assert not [link for link in links if not (REPO / link).exists()]


def test_the_hooks_pass_the_linter_and_the_60_line_rule():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(HOOKS), "tests/test_docs.py"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import ast

    for path in HOOKS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name} is over 60 lines"
