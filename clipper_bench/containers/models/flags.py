"""The command-line flags that choose how a model is built (shared by run, baseline and container)."""

from __future__ import annotations

import argparse

from ...common.options import add_declared_flag, flag_of
from .base import FRAMEWORKS, PRECISIONS, model_option_fields


def add_model_option_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Flags that choose how a model is built (shared by run, baseline and container)."""
    p.add_argument("--framework", choices=FRAMEWORKS, default="torch",
                   help="image models: torch (torchvision) or keras (keras.applications, backend from "
                        "KERAS_BACKEND, tensorflow by default); default torch")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="image models: default fp32")
    p.add_argument("--weights", default=None, help="image models: local weights file (default: seeded random)")
    p.add_argument("--models_dir", default="models",
                   help="where build-models writes the trained models (default models/)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, training data and query inputs")
    p.add_argument("--overlap_batches", choices=["auto", "on", "off"], default="auto",
                   help="torch image models on a GPU: start the next batch (copy into pinned memory, upload, "
                        "forward) before the last is answered (default auto: on for torch image models on a "
                        "GPU, off otherwise)")
    p.add_argument("--cuda_graphs", choices=["auto", "on", "off"], default="auto",
                   help="torch image models on a GPU: replay the forward pass as captured CUDA graphs, one per "
                        "power-of-two batch size, captured at load (default auto: on for torch image models on "
                        "a GPU, off otherwise; off is eager PyTorch)")
    p.add_argument("--warm_batch_size", type=int, default=0, help=argparse.SUPPRESS)


def add_model_own_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, **overrides: object) -> None:
    """Every model's own flags (``ModelSpec.options``: the sleep model's ``--sleep_ms``), as declared;
    ``overrides`` replace argparse options of each (``default=None``)."""
    for f in model_option_fields():
        add_declared_flag(p, f, **overrides)


def own_options_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The models' own options a command line was given (see :func:`add_model_own_flags`)."""
    return {f.name: getattr(args, f.name) for f in model_option_fields() if hasattr(args, f.name)}


def own_option_args(values: dict[str, object]) -> list[str]:
    """The container command's flags for the models' own options in ``values`` (by field name;
    None is left out)."""
    args: list[str] = []
    for f in model_option_fields():
        if values.get(f.name) is not None:
            args += [flag_of(f), str(values[f.name])]
    return args


def own_option_problem(values: dict[str, object]) -> str | None:
    """The first of the models' own options in ``values`` that its declared range or check refuses,
    as ``--flag <what is wrong>`` (as ``run`` says it), or None."""
    for f in model_option_fields():
        check = f.metadata.get("check")
        problem = check(values[f.name]) if check and values.get(f.name) is not None else None
        if problem:
            return f"{flag_of(f)} {problem}"
    return None
