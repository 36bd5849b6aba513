"""The container image that serves a model, named for the registered model (an alias deploys the
model it stands for: ``svm`` runs the ``kpca-svm`` image)."""

from __future__ import annotations

from ..containers.models import get_model_spec
from .manager import IMAGE_PREFIX


def model_image(model_name: str) -> str:
    """``clipper-bench/<registered model>`` for the model a user named (by its name or an alias)."""
    return f"{IMAGE_PREFIX}{get_model_spec(model_name).name}"
