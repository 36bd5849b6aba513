"""The model registry: every model the driver can deploy, by name."""

from .base import (
    Model,
    ModelOptions,
    ModelSpec,
    UnknownModelError,
    get_model_spec,
    model_names,
    model_option_classes,
    model_option_fields,
    model_option_names,
)

__all__ = ["Model", "ModelOptions", "ModelSpec", "UnknownModelError", "get_model_spec", "model_names",
           "model_option_classes", "model_option_fields", "model_option_names"]
