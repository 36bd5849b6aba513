"""MkDocs hook: the command-line reference, generated from clipper-bench's own parsers at build time.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with one section
per ``clipper-bench`` command (usage, then a table per ``--help`` group: flags, meaning, default),
read from ``clipper_bench.cli.build_parser()``. ``run``'s parser is itself generated from the
settings' declarations (``sweep/settings.py``), so the page says what ``--help`` says and cannot
drift from it. ``cli_reference()`` is also what ``tests/test_docs.py`` checks against ``--help``.
"""

from __future__ import annotations

import argparse
import html
import re

MARKER = "<!-- cli-reference -->"
PROG = "clipper-bench"


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """MkDocs event: put the generated reference where the page has the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def commands(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, in ``--help``'s order."""
    if parser is None:
        from clipper_bench.cli import build_parser

        parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help or "" for a in sub._choices_actions}


def cli_reference() -> str:
    """The reference's markdown: an index of the commands, then a section for each."""
    from clipper_bench.cli import build_parser

    parser = build_parser()
    summaries = _summaries(parser)
    parsers = commands(parser)
    lines = ["| command | what it does |", "| --- | --- |"]
    lines += [f"| [`{name}`](#{PROG}-{name}) | {_text(summaries.get(name, ''))} |" for name in parsers]
    lines += ["", f"`{PROG} --help` and `{PROG} --version` print the commands and the version.", ""]
    for name, sub in parsers.items():
        lines += command_section(name, sub, summaries.get(name, ""))
    return "\n".join(lines)


def command_section(name: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    """One command: its heading, what it does, its usage and a table per argument group."""
    lines = [f"## {PROG} {name} {{#{PROG}-{name}}}", ""]
    description = parser.description or summary
    if description:
        lines += [_text(description), ""]
    usage = parser.format_usage().strip().removeprefix("usage: ").replace("\n" + " " * len("usage: "), "\n")
    lines += ["```text", usage, "```", ""]
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        lines += [f"**{_text(_group_title(group.title))}**", ""]
        if group.description:
            lines += [_text(group.description), ""]
        lines += ["| flag | meaning | default |", "| --- | --- | --- |"]
        lines += [_row(action, formatter) for action in actions]
        lines.append("")
    return lines


def _group_title(title: str | None) -> str:
    return {"options": "options", "optional arguments": "options", "positional arguments": "arguments"}.get(
        title or "", title or "")


def _row(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """One table row: the flag's names and value, its help (%(default)s and the like expanded) and
    its default."""
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
    value = _value(action, formatter)
    flag = f"{names} `{value}`" if value and action.option_strings else names
    meaning = _text(formatter._expand_help(action)) if action.help else ""
    return f"| {flag} | {_cell(meaning)} | {_default(action)} |"


def _value(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """What follows the flag, as ``--help`` writes it (``N [N ...]``, ``{a,b,c}`` for choices)."""
    if action.nargs == 0:
        return ""
    return formatter._format_args(action, action.dest.upper())


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.required:
        return "required"
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or default is argparse.SUPPRESS:
        return ""
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if default is None:
        return ""
    if isinstance(default, (list, tuple)):
        return " ".join(f"`{v}`" for v in default) or "none"
    return f"`{default}`"


_MARKDOWN = re.compile(r"([\\`*_\[\]|])")


def _text(text: str) -> str:
    """Help text as literal markdown: HTML and markdown characters escaped, whitespace collapsed."""
    return _MARKDOWN.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def _cell(text: str) -> str:
    """Text that goes in a table cell (no line breaks, no bare pipes)."""
    return " ".join(text.split())
