"""The management state of a Clipper cluster: applications, model versions and their links.

Every method takes the JSON body Clipper's management frontend takes and raises
:class:`AdminError` with Clipper's kind of message when the request cannot be honoured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..protocol.types import InputType, parse_input_type

NAME_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MAX_NAME_CHARS = 128
MAX_SLO_MICROS = 86_400 * 10**6  # a day
MAX_DEFAULT_OUTPUT_BYTES = 64 * 1024


class AdminError(ValueError):
    """A management request that cannot be honoured (answered with HTTP 400)."""


@dataclass
class Application:
    name: str
    input_type: InputType
    default_output: str
    latency_slo_micros: int
    linked_models: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The application as the management API reports it."""
        return {
            "name": self.name,
            "input_type": self.input_type.api_name,
            "default_output": self.default_output,
            "latency_slo_micros": self.latency_slo_micros,
            "linked_models": list(self.linked_models),
        }


@dataclass
class ModelVersion:
    model_name: str
    model_version: str
    input_type: InputType
    labels: list[str]
    container_name: str
    model_data_path: str
    batch_size: int
    is_current_version: bool = True
    input_elements: int | None = None  # declared with clipper-bench's set_input_size call; None: unchecked

    @property
    def key(self) -> tuple[str, str]:
        """The ``(model_name, model_version)`` key the registry holds this version under."""
        return (self.model_name, self.model_version)

    def to_json(self) -> dict[str, Any]:
        """The model version as the management API reports it."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_id": f"{self.model_name}:{self.model_version}",
            "is_current_version": self.is_current_version,
            "input_type": self.input_type.api_name,
            "labels": list(self.labels),
            "container_name": self.container_name,
            "model_data_path": self.model_data_path,
            "batch_size": self.batch_size,
            "input_elements": self.input_elements,
        }


def _field(body: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(body, dict):
        raise AdminError("request body must be a JSON object")
    if name not in body:
        raise AdminError(f"missing field '{name}'")
    value = body[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise AdminError(f"field '{name}' must be a {expected}")
    return value


def _check_name(value: str, what: str) -> str:
    if len(value) > MAX_NAME_CHARS:
        raise AdminError(f"{what} of {len(value)} characters is too long: at most {MAX_NAME_CHARS}")
    if not NAME_PATTERN.match(value):
        raise AdminError(
            f"{what} '{value}' is invalid: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _input_type(body: Any) -> InputType:
    try:
        return parse_input_type(_field(body, "input_type", str))
    except ValueError as exc:
        raise AdminError(str(exc)) from exc


class Registry:
    """Applications and model versions, keyed as Clipper keys them."""

    def __init__(self) -> None:
        self.apps: dict[str, Application] = {}
        self.models: dict[tuple[str, str], ModelVersion] = {}
        # input sizes declared per (model_name, model_version); kept when the version is deleted, so
        # a version added again under the same name and version gets its size check back
        self.declared_sizes: dict[tuple[str, str], int] = {}

    # -- applications ---------------------------------------------------------------------------

    def add_app(self, body: Any) -> Application:
        """Register the application an ``add_app`` body describes; AdminError if invalid or taken."""
        name = _check_name(_field(body, "name", str), "application name")
        if name in self.apps:
            raise AdminError(f"application '{name}' already exists")
        slo = _field(body, "latency_slo_micros", int)
        if not 0 < slo <= MAX_SLO_MICROS:
            raise AdminError(f"latency_slo_micros must be positive and at most {MAX_SLO_MICROS} (a day)")
        default_output = _field(body, "default_output", str)
        if len(default_output.encode()) > MAX_DEFAULT_OUTPUT_BYTES:
            raise AdminError(f"default_output must be at most {MAX_DEFAULT_OUTPUT_BYTES} bytes")
        app = Application(name, _input_type(body), default_output, slo)
        self.apps[name] = app
        return app

    def delete_app(self, body: Any) -> None:
        """Remove the application the body names; AdminError if there is none."""
        name = _field(body, "name", str)
        if self.apps.pop(name, None) is None:
            raise AdminError(f"no application named '{name}'")

    def get_app(self, name: str) -> Application:
        """The application named ``name``; AdminError if there is none."""
        app = self.apps.get(name)
        if app is None:
            raise AdminError(f"no application named '{name}'")
        return app

    def add_model_links(self, body: Any) -> Application:
        """Link an application to one model of its input type (an application links at most one)."""
        app = self.get_app(_field(body, "app_name", str))
        names = _field(body, "model_names", list)
        if len(names) != 1 or not isinstance(names[0], str):
            raise AdminError("model_names must hold exactly one model name")
        name = names[0]
        versions = [m for m in self.models.values() if m.model_name == name]
        if not versions:
            raise AdminError(f"no model named '{name}'")
        if any(m.input_type != app.input_type for m in versions):
            raise AdminError(
                f"model '{name}' takes {versions[0].input_type.api_name}, "
                f"application '{app.name}' takes {app.input_type.api_name}"
            )
        if app.linked_models and app.linked_models != [name]:
            raise AdminError(
                f"application '{app.name}' is already linked to model '{app.linked_models[0]}'"
            )
        app.linked_models = [name]
        return app

    def delete_model_links(self, body: Any) -> Application:
        """Unlink the named models from an application; return the application."""
        app = self.get_app(_field(body, "app_name", str))
        names = _field(body, "model_names", list)
        app.linked_models = [m for m in app.linked_models if m not in names]
        return app

    # -- models ---------------------------------------------------------------------------------

    def add_model(self, body: Any) -> ModelVersion:
        """Register a model version, which becomes the model's current one; AdminError if invalid or taken."""
        name = _check_name(_field(body, "model_name", str), "model name")
        version = _check_name(str(_field(body, "model_version", (str, int))), "model version")
        if (name, version) in self.models:
            raise AdminError(f"model {name}:{version} already exists")
        batch_size = body.get("batch_size", -1)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or (
            batch_size != -1 and batch_size < 1
        ):
            raise AdminError("batch_size must be -1 (adaptive) or a positive integer")
        labels = body.get("labels", [])
        if not isinstance(labels, list):
            raise AdminError("labels must be a list of strings")
        model = ModelVersion(
            model_name=name,
            model_version=version,
            input_type=_input_type(body),
            labels=[str(x) for x in labels],
            container_name=str(body.get("container_name", "")),
            model_data_path=str(body.get("model_data_path", "")),
            batch_size=batch_size,
            input_elements=self.declared_sizes.get((name, version)),
        )
        for other in self.models.values():
            if other.model_name == name:
                other.is_current_version = False
        self.models[model.key] = model
        return model

    def set_input_size(self, name: str, version: str, input_elements: int) -> ModelVersion:
        """Declare how many elements one input of model version ``name:version`` holds; the
        declaration outlives the version (see ``declared_sizes``). AdminError if there is no such
        version or the size is not a positive integer."""
        model = self.get_model(name, version)
        if not isinstance(input_elements, int) or isinstance(input_elements, bool) or input_elements < 1:
            raise AdminError("input_elements must be a positive integer")
        model.input_elements = input_elements
        self.declared_sizes[model.key] = input_elements
        return model

    def set_model_version(self, body: Any) -> ModelVersion:
        """Make the named version its model's current version; return it."""
        name = _field(body, "model_name", str)
        version = str(_field(body, "model_version", (str, int)))
        target = self.get_model(name, version)
        for other in self.models.values():
            if other.model_name == name:
                other.is_current_version = other is target
        return target

    def get_model(self, name: str, version: str) -> ModelVersion:
        """Model version ``name:version``; AdminError if there is none."""
        model = self.models.get((name, version))
        if model is None:
            raise AdminError(f"no model {name}:{version}")
        return model

    def delete_versioned_model(self, body: Any) -> ModelVersion:
        """Remove the named model version and return it; AdminError if there is none."""
        name = _field(body, "model_name", str)
        version = str(_field(body, "model_version", (str, int)))
        model = self.get_model(name, version)
        del self.models[model.key]
        return model

    def current_version(self, name: str) -> ModelVersion | None:
        """The current version of model ``name``, or None if it has none."""
        for model in self.models.values():
            if model.model_name == name and model.is_current_version:
                return model
        return None

    def model_for_app(self, app: Application) -> ModelVersion | None:
        """The model version that serves ``app``'s queries, if one is linked."""
        if not app.linked_models:
            return None
        return self.current_version(app.linked_models[0])
