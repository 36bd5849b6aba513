"""What a configuration's status promises, and the one rule that decides it.

A status is a promise about the measurement window:

``ok``
    the window held successful answers, no fault touched the configuration, and errors plus
    unanswered queries stayed within ``ERROR_SHARE_LIMIT`` of the queries sent in the window;
``no_answers``
    the window measured nothing: every query due in it got an SLO default, an error or no answer
    (or none was sent in it at all);
``degraded``
    there were successful answers, but a replica died, hung, stopped or was dropped while the
    configuration ran, or errors plus unanswered queries passed ``ERROR_SHARE_LIMIT``;
``failed``
    the configuration could not be measured (deployment, load client or frontend failure);
``interrupted``
    Ctrl-C or SIGTERM arrived while it ran.

Only ``ok`` is a clean measurement: the exit status, ``report``'s picks and plots, ``load_results``'s
``clean`` column and ``--resume`` (which re-runs everything else) all read it from here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

ERROR_SHARE_LIMIT = 0.01  # errors + unanswered, as a share of the queries sent in the window


class RunStatus(StrEnum):
    """The status of one configuration's record and ``runs.ndjson`` line."""

    OK = "ok"
    NO_ANSWERS = "no_answers"
    DEGRADED = "degraded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def clean(self) -> bool:
        """Whether the record is a clean measurement (only ``ok`` is)."""
        return self is RunStatus.OK


def classify(summary: dict[str, Any], faults: list[dict[str, Any]]) -> tuple[RunStatus, str | None]:
    """The status of a configuration whose window was measured, and the reason when it is not ``ok``.

    ``summary`` is :func:`clipper_bench.load.stats.summarize`'s result; ``faults`` are the faults
    recorded while the configuration ran (each with a ``what``).
    """
    sent = summary["num_sent"]
    completed = summary["num_completed"]
    if sent == 0:
        return RunStatus.NO_ANSWERS, (
            "no query was sent inside the measurement window (the closed loop waited for answers to "
            "warm-up queries the whole time): lengthen --warmup and -d, or raise --concurrency"
        )
    if completed == 0 and faults:  # the fault, not the model's speed, is why nothing was answered
        return RunStatus.NO_ANSWERS, (
            f"none of the {sent} queries sent in the window was answered successfully; faults during "
            "the configuration: " + "; ".join(f["what"] for f in faults)
        )
    if summary["num_defaults"] == sent:
        return RunStatus.NO_ANSWERS, (
            f"all {sent} queries sent in the window got the SLO default: the model is slower than "
            "--slo_ms here; raise it"
        )
    if completed == 0:
        parts = [f"{summary['num_defaults']} SLO defaults", f"{summary['num_errors']} errors",
                 f"{summary['num_unanswered']} unanswered"]
        return RunStatus.NO_ANSWERS, (
            f"none of the {sent} queries sent in the window was answered successfully ({', '.join(parts)})"
        )
    if faults:
        return RunStatus.DEGRADED, "faults during the configuration: " + "; ".join(f["what"] for f in faults)
    bad = summary["num_errors"] + summary["num_unanswered"]
    if bad > ERROR_SHARE_LIMIT * sent:
        return RunStatus.DEGRADED, (
            f"{bad} of {sent} queries sent in the window ({100 * bad / sent:.1f}%) got an error or no "
            f"answer; the limit for ok is {100 * ERROR_SHARE_LIMIT:g}%"
        )
    return RunStatus.OK, None


def classify_windows(summaries: list[dict[str, Any]], faults: list[dict[str, Any]]) -> tuple[RunStatus, str | None]:
    """The status of a configuration measured in several windows (``--repeats``): ``ok`` only when
    every window is; otherwise the first window's status that is not, with the repeat named."""
    for k, summary in enumerate(summaries):
        status, reason = classify(summary, faults)
        if status is not RunStatus.OK:
            return status, (reason if len(summaries) == 1 else f"repeat {k + 1} of {len(summaries)}: {reason}")
    return RunStatus.OK, None
