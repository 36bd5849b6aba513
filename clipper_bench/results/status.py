"""What a configuration's status promises, and the one rule that decides it.

A status is a promise about the measurement window:

``ok``
    the window held successful answers, no fault touched the configuration, and errors plus
    unanswered queries stayed within ``ERROR_SHARE_LIMIT`` of the queries sent in the window;
``no_answers``
    the window measured nothing: every query due in it got an SLO default, an error or no answer
    (or none was sent in it at all, or no answer arrived inside it); the reason says whether the
    model, the queue before it or the window's length is why;
``overloaded``
    the load was more than the system could serve within its SLO: an open loop's successful answers
    inside the window fell short of the queries sent in it by more than
    ``clipper_bench.load.stats.OVERLOAD_MARGIN`` (10%), or (either loop) more than
    ``ERROR_SHARE_LIMIT`` of the window's queries got the SLO default, which the latency percentiles
    leave out. The throughput is then the system's capacity at best, not the rate asked for; the
    reason gives the numbers;
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
    OVERLOADED = "overloaded"
    DEGRADED = "degraded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def clean(self) -> bool:
        """Whether the record is a clean measurement (only ``ok`` is)."""
        return self is RunStatus.OK


def classify(summary: dict[str, Any], faults: list[dict[str, Any]],
             model_latency_ms: float | None = None) -> tuple[RunStatus, str | None]:
    """The status of a configuration whose window was measured, and the reason when it is not ``ok``.

    ``summary`` is :func:`clipper_bench.load.stats.summarize`'s result; ``faults`` are the faults
    recorded while the configuration ran (each with a ``what``); ``model_latency_ms`` is the time
    the model took per batch as the frontend saw it (its ``prediction_latency`` p50), when known:
    it tells a model slower than the SLO from a queue that made fast answers late.
    """
    sent = summary["num_sent"]
    answered = summary.get("num_answered_ok", summary["num_completed"])
    if sent == 0:
        return RunStatus.NO_ANSWERS, _nothing_sent(summary)
    if answered == 0 and faults:  # the fault, not the model's speed, is why nothing was answered
        return RunStatus.NO_ANSWERS, (
            f"none of the {sent} queries sent in the window was answered successfully; faults during "
            "the configuration: " + "; ".join(f["what"] for f in faults)
        )
    if faults:  # a fault explains defaults, errors and a shortfall alike: it is named first
        return RunStatus.DEGRADED, "faults during the configuration: " + "; ".join(f["what"] for f in faults)
    slo_ms = summary.get("slo_ms")
    if summary["num_defaults"] == sent and model_latency_ms is not None and slo_ms and model_latency_ms >= slo_ms:
        return RunStatus.NO_ANSWERS, (
            f"all {sent} queries sent in the window got the SLO default: the model takes "
            f"{model_latency_ms:,.1f} ms per batch as the frontend sees it (batches in flight included), "
            f"more than --slo_ms {slo_ms:g}; raise --slo_ms"
        )
    if answered == 0 and summary["num_errors"] + summary["num_unanswered"] > 0:
        parts = [f"{summary['num_defaults']} SLO defaults", f"{summary['num_errors']} errors",
                 f"{summary['num_unanswered']} unanswered"]
        return RunStatus.NO_ANSWERS, (
            f"none of the {sent} queries sent in the window was answered successfully ({', '.join(parts)})"
        )
    overload = summary.get("overload")
    if overload and overload["overloaded"]:
        return RunStatus.OVERLOADED, overload_reason(summary, faults)
    defaults = summary["num_defaults"]
    if defaults > ERROR_SHARE_LIMIT * sent:
        return RunStatus.OVERLOADED, (
            f"{defaults} of {sent} queries sent in the window ({100 * defaults / sent:.1f}%) got the SLO default "
            f"(the limit for ok is {100 * ERROR_SHARE_LIMIT:g}%), and the latency percentiles, which are of "
            "successful answers, leave them out: " + _default_blame(model_latency_ms, slo_ms)
        )
    if summary["num_completed"] == 0:
        return RunStatus.NO_ANSWERS, (
            f"no successful answer arrived inside the {summary['duration_s']:g} s window (the {answered} "
            "answers to queries sent in it came after it), so it measured no throughput: lengthen -d"
        )
    bad = summary["num_errors"] + summary["num_unanswered"]
    if bad > ERROR_SHARE_LIMIT * sent:
        return RunStatus.DEGRADED, (
            f"{bad} of {sent} queries sent in the window ({100 * bad / sent:.1f}%) got an error or no "
            f"answer; the limit for ok is {100 * ERROR_SHARE_LIMIT:g}%"
        )
    return RunStatus.OK, None


def _nothing_sent(summary: dict[str, Any]) -> str:
    """Why no query was due inside the window."""
    if summary.get("overload") is not None:  # open loop: the rate put no query in the window
        return (f"no query was due inside the {summary['duration_s']:g} s window at --rate "
                f"{summary['overload']['rate_qps']:g}: lengthen -d or raise --rate")
    return ("no query was sent inside the measurement window (the closed loop waited for answers to "
            "warm-up queries the whole time): lengthen --warmup and -d, or raise --concurrency")


def _default_blame(model_latency_ms: float | None, slo_ms: float | None) -> str:
    """What to change when many queries got the SLO default."""
    if model_latency_ms is not None and slo_ms and model_latency_ms >= slo_ms:
        return f"the model takes {model_latency_ms:,.1f} ms per batch as the frontend sees it; raise --slo_ms"
    if model_latency_ms is not None:
        return (f"the model answers a batch in {model_latency_ms:,.1f} ms, within --slo_ms {slo_ms:g}, but the "
                "queries waited longer than that in the queue before it; lower --concurrency or --rate, or add replicas")
    return ("the model, or the queue before it, is slower than --slo_ms here; lower --concurrency or --rate, "
            "add replicas, or raise --slo_ms")


def overload_reason(summary: dict[str, Any], faults: list[dict[str, Any]]) -> str:
    """Why an open-loop window is ``overloaded``: what was offered against what was completed."""
    o = summary["overload"]
    text = (
        f"offered {o['offered_qps']:,.1f} q/s ({summary['num_sent']} queries sent in the window, "
        f"--rate {o['rate_qps']:g}), completed {o['completed_qps']:,.1f} q/s inside it "
        f"({100 * o['shortfall']:.0f}% short, the limit for ok is {100 * o['margin']:g}%); "
        f"backlog {o['backlog_start']} -> {o['backlog_end']} queries, {summary['num_defaults']} SLO defaults: "
        "the system cannot keep up with this rate; lower --rate or add replicas"
    )
    if faults:
        text += "; faults during the configuration: " + "; ".join(f["what"] for f in faults)
    return text


def classify_windows(summaries: list[dict[str, Any]], faults: list[dict[str, Any]],
                     model_latency_ms: float | None = None) -> tuple[RunStatus, str | None]:
    """The status of a configuration measured in several windows (``--repeats``): ``ok`` only when
    every window is; otherwise the first window's status that is not, with the repeat named."""
    for k, summary in enumerate(summaries):
        status, reason = classify(summary, faults, model_latency_ms)
        if status is not RunStatus.OK:
            return status, (reason if len(summaries) == 1 else f"repeat {k + 1} of {len(summaries)}: {reason}")
    return RunStatus.OK, None
