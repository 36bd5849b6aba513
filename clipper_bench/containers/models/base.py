"""The model interface and the registry of model specs.

A :class:`ModelSpec` says what a model takes (Clipper input type and shape of one input), how to
make a pool of query inputs for it, and how to build it. A :class:`Model` answers a batch of inputs
with one UTF-8 output per input. Real models register themselves in their own modules; the registry
imports those modules lazily so that ``noop`` never pays for importing a deep-learning framework.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

from ...common.plugins import MODELS_GROUP, plugins, warn_clash
from ...protocol.types import InputType

FRAMEWORKS = ("torch", "keras")
PRECISIONS = ("fp32", "tf32", "bf16")


OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class ModelOptions:
    """Settings a model may use; each model reads the ones that concern it. A model's own options
    (declared by its spec, :attr:`ModelSpec.options`) travel in ``own`` by field name; the model
    reads them as its declaration's type with :meth:`of`."""

    framework: str = "torch"  # image models: "torch" (torchvision) or "keras" (keras.applications)
    precision: str = "fp32"  # image models: "fp32", "tf32" or "bf16"
    weights: str | None = None  # image models: a local weights file instead of seeded random weights
    models_dir: str = "models"  # where build-models wrote the classical models' artifacts
    seed: int = 0
    warm_batch_size: int = 0  # run batches up to this size once at load, before serving
    overlap_batches: str = "off"  # GPU image models: "on" overlaps a batch's transfers with the next's compute
    cuda_graphs: str = "off"  # torch image models on a GPU: "on" replays captured CUDA graphs of the forward pass
    # ("auto" for either: on for a torch image model on a GPU)
    own: Mapping[str, Any] = field(default_factory=dict)  # the models' own options, by field name

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> ModelOptions:
        """Options from one flat mapping (a settings' ``model_options()``, a job file): the fields
        named here, and every other key as a model's own option."""
        core = {f.name for f in fields(cls)} - {"own"}
        return cls(**{k: v for k, v in values.items() if k in core},
                   own={k: v for k, v in values.items() if k not in core})

    def of(self, declaration: type[OptionsT]) -> OptionsT:
        """A model's own options as its declaration's type; a field not given keeps its default."""
        return declaration(**{f.name: self.own[f.name] for f in fields(declaration) if f.name in self.own})


class Model(ABC):
    """A loaded model that answers batches."""

    @abstractmethod
    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """Answer each input (a 1-D array of the spec's input type) with one UTF-8 output."""

    #: True when :meth:`submit` returns before the batch is done, so that a container can receive
    #: and start the next batch (its upload, on a GPU) while this one computes.
    overlaps_batches = False

    def ready(self, handle: Any) -> bool:
        """Whether :meth:`finish` would return at once."""
        return True

    def submit(self, inputs: Sequence[np.ndarray]) -> Any:
        """Start a batch and return a handle for :meth:`finish`. The inputs may be views of memory
        that changes after this returns (shared memory, receive buffers): copy what is kept. By
        default the batch is answered here, at once."""
        return self.predict(inputs)

    def finish(self, handle: Any) -> list[bytes]:
        """The outputs of a batch :meth:`submit` started, in submission order."""
        return handle

    def warm_batch_sizes(self, max_batch: int) -> list[int]:
        """Batch sizes to run once at load so that none pays a first-call cost while measured."""
        return [max_batch]


@dataclass(frozen=True)
class ModelSpec:
    """What the driver and the container need to know about a model."""

    name: str
    input_type: InputType
    input_shape: tuple[int, ...]
    description: str
    build: Callable[[ModelOptions], Model]
    output_description: str = "one UTF-8 string"
    needs_build: bool = False  # artifacts made by `clipper-bench build-models` (trained models)
    uses_gpu: bool = False  # runs on a GPU given one with -g (the image models); else on CPUs only
    # its own options: a frozen dataclass of ``common.options.setting`` fields (flag, default, help,
    # range), e.g. the sleep model's SleepOptions with --sleep_ms; run, serve, container, plan and
    # pipeline files offer them, and the model reads them with ``ModelOptions.of``
    options: type | None = None

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of the model's own options (none when it declares none)."""
        return tuple(f.name for f in fields(self.options)) if self.options else ()

    @property
    def input_size(self) -> int:
        """Elements in one input: the product of ``input_shape``."""
        size = 1
        for dim in self.input_shape:
            size *= dim
        return size

    @property
    def input_bytes(self) -> int:
        """Size of one input on the wire."""
        return self.input_size * self.input_type.dtype.itemsize

    def pool_size(self, wanted: int, budget_bytes: int = 256 * 2**20) -> int:
        """How many pre-generated inputs to keep: ``wanted``, capped so the pool fits the budget."""
        return max(1, min(wanted, budget_bytes // self.input_bytes))

    def make_inputs(self, count: int, seed: int = 0) -> list[np.ndarray]:
        """A pool of ``count`` random inputs, flattened, in the spec's wire dtype.

        Images (bytes inputs) are random pixel values 0-255; numeric inputs are uniform in [0, 1).
        """
        rng = np.random.default_rng(seed)
        if self.input_type is InputType.BYTES:
            return [rng.integers(0, 256, self.input_size, dtype=np.uint8) for _ in range(count)]
        dtype = self.input_type.dtype
        if self.input_type is InputType.STRINGS:
            return [rng.integers(97, 123, self.input_size, dtype=np.uint8) for _ in range(count)]
        if self.input_type is InputType.INTS:
            return [rng.integers(0, 256, self.input_size).astype(dtype) for _ in range(count)]
        return [rng.random(self.input_size).astype(dtype) for _ in range(count)]


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


_SPECS: dict[str, ModelSpec] = {}
# Modules that register models when imported, tried in this order.
_MODEL_MODULES = (
    "clipper_bench.containers.models.calibration",
    "clipper_bench.containers.models.image",
    "clipper_bench.containers.models.classical",
)


_ALIASES: dict[str, str] = {}  # another name a user may type -> the registered model's name


def register(spec: ModelSpec, aliases: tuple[str, ...] = ()) -> ModelSpec:
    """Add a model to the registry (called by the module that defines it), with other names for it
    (the original driver's, say) that deploy it under the name typed."""
    _SPECS[spec.name] = spec
    _ALIASES.update(dict.fromkeys(aliases, spec.name))
    return spec


_plugins_loaded = False


def _load_all() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)
    _load_plugins()


def _load_plugins() -> None:
    """Register the models of installed packages' ``clipper_bench.models`` entry points, once: each
    points at a :class:`ModelSpec` (registered here) or a module that calls :func:`register` itself.
    A built-in model keeps its name; the plug-in is left out with a warning."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    builtin = dict(_SPECS)
    for ep in plugins(MODELS_GROUP, builtin).values():
        loaded = ep.load()
        for name, spec in builtin.items():  # a module that registered over a built-in
            if _SPECS.get(name) is not spec:
                warn_clash(MODELS_GROUP, name)
                _SPECS[name] = spec
        if isinstance(loaded, ModelSpec):
            if loaded.name in builtin:
                warn_clash(MODELS_GROUP, loaded.name)
            else:
                register(loaded)


def model_option_classes() -> list[type]:
    """Every registered model's own options declaration, once each, in registration order. Two
    declarations may not share a field name (the flag would mean two things)."""
    _load_all()
    classes: list[type] = []
    owner: dict[str, str] = {}
    for spec in _SPECS.values():
        if spec.options is None or spec.options in classes:
            continue
        for name in spec.option_names:
            if name in owner:
                raise ValueError(f"models {owner[name]} and {spec.name} both declare an option {name!r}: "
                                 "rename one (a flag means one thing)")
            owner[name] = spec.name
        classes.append(spec.options)
    return classes


def model_option_fields() -> list[Any]:
    """The declared fields of every model's own options (see :func:`model_option_classes`)."""
    return [f for cls in model_option_classes() for f in fields(cls)]


def model_option_names() -> list[str]:
    """The names of every model's own options."""
    return [f.name for f in model_option_fields()]


def model_names(aliases: bool = False) -> list[str]:
    """Names of every registered model (and, with ``aliases``, the other names they answer to)."""
    _load_all()
    return sorted([*_SPECS, *_ALIASES] if aliases else _SPECS)


def model_aliases() -> dict[str, str]:
    """The other names models answer to, each with the registered model's name."""
    _load_all()
    return dict(_ALIASES)


def get_model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; raises UnknownModelError naming the models there are."""
    _load_all()
    try:
        return _SPECS[_ALIASES.get(name, name)]
    except KeyError:
        raise UnknownModelError(
            f"unknown model '{name}': choose one of {', '.join(model_names(aliases=True))}"
        ) from None
