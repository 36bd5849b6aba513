"""MkDocs hook: the site's home page is the README, so the two cannot drift apart.

``docs/index.md`` holds the marker ``<!-- readme -->``; this hook replaces it with ``README.md``
(read from the directory above ``docs_dir``), its links to ``docs/...`` made relative to the site.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- readme -->"
_DOCS_LINK = re.compile(r"\]\(docs/")


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """MkDocs event: put the README where the page has the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, readme_for_site(Path(config["docs_dir"]).parent / "README.md"))


def readme_for_site(path: Path) -> str:
    """The README with ``](docs/page.md)`` links rewritten to ``](page.md)``."""
    return _DOCS_LINK.sub("](", path.read_text())
