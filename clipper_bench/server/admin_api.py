"""Clipper's management API (``POST /admin/<call>``) as a table of calls over the registry and the
dispatcher. The frontend's HTTP handler looks a call up here; adding a call is one method and one
line in :data:`AdminApi.CALLS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .dispatcher import Dispatcher
from .registry import AdminError, Registry

SUCCESS = "Success!"


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise AdminError("request body must be a JSON object")
    return body


def _verbose(body: Any) -> bool:
    return isinstance(body, dict) and bool(body.get("verbose"))


class AdminApi:
    """Answers management calls the way Clipper 0.4.1's management frontend does."""

    def __init__(self, registry: Registry, dispatcher: Dispatcher) -> None:
        self.registry = registry
        self.dispatcher = dispatcher

    def call(self, name: str, body: Any) -> Any:
        """Run call ``name`` with its JSON ``body``; AdminError for an unknown call or a bad body."""
        method = self.CALLS.get(name)
        if method is None:
            raise AdminError(f"unknown management call '{name}'")
        return method(self, body)

    # -- changes ------------------------------------------------------------------------------

    def add_app(self, body: Any) -> str:
        """Register an application; its ``app:<name>:*`` metrics exist from now on, as Clipper's do."""
        app = self.registry.add_app(body)
        self.dispatcher.metrics.add_app(app.name)
        return SUCCESS

    def delete_app(self, body: Any) -> str:
        """Remove an application."""
        self.registry.delete_app(body)
        self.dispatcher.metrics.forget_app(body["name"])
        return SUCCESS

    def add_model(self, body: Any) -> str:
        """Register a model version; its queue takes the model's batch size, and its
        ``model:<name>:<version>:*`` metrics exist from now on, as Clipper's do."""
        model = self.registry.add_model(body)
        self.dispatcher.metrics.add_model(model.model_name, model.model_version)
        self.dispatcher.set_batch_size(model.key, model.batch_size)
        return SUCCESS

    def add_model_links(self, body: Any) -> str:
        """Link a model to an application."""
        self.registry.add_model_links(body)
        return SUCCESS

    def delete_model_links(self, body: Any) -> str:
        """Unlink a model from an application."""
        self.registry.delete_model_links(body)
        return SUCCESS

    def set_model_version(self, body: Any) -> str:
        """Make a version of a model the one that serves."""
        self.registry.set_model_version(body)
        return SUCCESS

    def delete_versioned_model(self, body: Any) -> str:
        """Remove a model version; its queued queries are answered with an error."""
        model = self.registry.delete_versioned_model(body)
        self.dispatcher.metrics.forget_model(model.model_name, model.model_version)
        self.dispatcher.remove_model(model.key, f"model {model.model_name}:{model.model_version} was deleted")
        return SUCCESS

    # -- queries ------------------------------------------------------------------------------

    def get_all_applications(self, body: Any) -> list:
        """Every application's name, or its description with ``verbose``."""
        apps = self.registry.apps.values()
        return [a.to_json() for a in apps] if _verbose(body) else [a.name for a in apps]

    def get_application(self, body: Any) -> dict:
        """The named application, or ``{}``."""
        app = self.registry.apps.get(body.get("name") if isinstance(body, dict) else None)
        return app.to_json() if app else {}

    def get_linked_models(self, body: Any) -> list:
        """The models linked to the named application."""
        app = self.registry.apps.get(body.get("app_name") if isinstance(body, dict) else None)
        if app is None:
            raise AdminError("no such application")
        return list(app.linked_models)

    def get_all_models(self, body: Any) -> list:
        """Every model version as ``name:version``, or its description with ``verbose``."""
        models = self.registry.models.values()
        if _verbose(body):
            return [m.to_json() for m in models]
        return [f"{m.model_name}:{m.model_version}" for m in models]

    def get_model(self, body: Any) -> dict:
        """The named model version, or ``{}``."""
        body = _object(body)
        model = self.registry.models.get((str(body.get("model_name")), str(body.get("model_version"))))
        return model.to_json() if model else {}

    def get_all_containers(self, body: Any) -> list:
        """Every connected replica as ``name,version,replica_id``, or its description with ``verbose``."""
        reps = sorted(self.dispatcher.replicas.values(), key=lambda r: (r.key, r.replica_id))
        if _verbose(body):
            return [r.to_json() for r in reps]
        return [f"{r.key[0]},{r.key[1]},{r.replica_id}" for r in reps]

    def get_container(self, body: Any) -> dict:
        """The replica of a model version with the given ``replica_id``, or ``{}``."""
        body = _object(body)
        key = (str(body.get("model_name")), str(body.get("model_version")))
        for r in self.dispatcher.replicas_of(key):
            if r.replica_id == body.get("replica_id"):
                return r.to_json()
        return {}

    CALLS: ClassVar[dict[str, Callable[[AdminApi, Any], Any]]] = {
        name: func for name, func in locals().items()
        if callable(func) and not name.startswith("_") and name != "call"
    }
