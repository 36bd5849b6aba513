"""A report's text-and-table PDF pages: the text on the first page, the table paginated after it."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure


def table_pages(text: list[str], columns: Sequence[str], rows: list[list[str]], continued: str,
                page_in: tuple[float, float], per_page: int) -> list[Figure]:
    """Pages of ``page_in`` inches: ``text`` above the first ``per_page`` rows of the table, then
    ``continued`` (formatted with ``page`` and ``pages``) above each further ``per_page`` rows."""
    import matplotlib.pyplot as plt  # as the callers do: after the backend is chosen

    chunks = [rows[i:i + per_page] for i in range(0, len(rows), per_page)] or [[]]
    pages = []
    for k, chunk in enumerate(chunks):
        fig = plt.figure(figsize=page_in)
        lines = text if k == 0 else [continued.format(page=k + 1, pages=len(chunks))]
        fig.text(0.03, 0.97, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace")
        top = 1 - (len(lines) + 2) * 0.16 / page_in[1]
        ax = fig.add_axes((0.02, 0.02, 0.96, max(0.1, top - 0.03)))
        ax.axis("off")
        if chunk:
            table = ax.table(cellText=chunk, colLabels=list(columns), loc="upper center", cellLoc="right")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
            table.scale(1, 1.2)
            table.auto_set_column_width(list(range(len(columns))))
        pages.append(fig)
    return pages
