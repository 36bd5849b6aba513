"""A pipeline description: stages (models of the registry), the edges between them, and what to sweep.

The file (YAML) names each stage, the registry model it runs, the stage that feeds it (``input``;
none for the stages a query enters), its model options, and the lists to sweep::

    name: image_driver_1
    stages:
      vgg:       {model: vgg, replicas: [1], batch_sizes: [64], cpus_per_replica: [1], gpus: [0]}
      svm:       {model: kpca-svm, input: vgg, replicas: [1], batch_sizes: [16]}
      inception: {model: inception, replicas: [1], batch_sizes: [48]}
      lgbm:      {model: lgbm, input: inception, replicas: [1], batch_sizes: [2]}
    configurations:            # optional: these tuples instead of the cross product
      - {vgg: {replicas: 2}}   # a stage left out, or a field left out, takes its list's first value

A query enters every stage without ``input`` and is done when every stage that feeds no other (a
sink) has answered; a stage that answers with the SLO default or an error ends its branch.
Every problem is a :class:`PipelineError` naming the stage and the fix, raised before anything runs.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...containers.models import UnknownModelError, get_model_spec, model_option_names

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # Clipper's rule for model and app names
STAGE_KEYS = {"model", "input", "replicas", "batch_sizes", "cpus_per_replica", "gpus", "options"}
SWEPT = {"replicas": "replicas", "batch_size": "batch_sizes", "cpus_per_replica": "cpus_per_replica"}
SHARED_OPTION_KEYS = {"framework", "precision", "weights", "overlap_batches", "cuda_graphs"}
BUILTIN_DIR = Path(__file__).resolve().parents[3] / "examples" / "pipelines"


def option_keys() -> set[str]:
    """What a stage's ``options`` may set: the shared model options and every model's own
    (``ModelSpec.options``: the sleep model's sleep_ms)."""
    return SHARED_OPTION_KEYS | set(model_option_names())


class PipelineError(ValueError):
    """A pipeline file that cannot run; the message names the problem and the fix."""


@dataclass(frozen=True)
class Stage:
    """One stage: a registry model served under the stage's name, fed by ``input`` (None: the query)."""

    name: str
    model: str
    input: str | None
    replicas: tuple[int, ...] = (1,)
    batch_sizes: tuple[int, ...] = (1,)
    cpus_per_replica: tuple[int, ...] = (1,)
    gpus: tuple[int, ...] = ()  # GPU of replica i is gpus[i]; empty: CPU only
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageConfig:
    """One stage's values in one configuration."""

    replicas: int
    batch_size: int
    cpus_per_replica: int

    def tag(self) -> str:
        """``r<replicas>c<cores>b<batch>``."""
        return f"r{self.replicas}c{self.cpus_per_replica}b{self.batch_size}"


@dataclass(frozen=True)
class PipelineSpec:
    """The stages in file order, and the configurations to measure."""

    name: str
    stages: tuple[Stage, ...]
    configurations: tuple[dict[str, StageConfig], ...]
    source: str

    @property
    def entries(self) -> list[Stage]:
        """The stages a query enters."""
        return [s for s in self.stages if s.input is None]

    @property
    def sinks(self) -> list[Stage]:
        """The stages that feed no other: a query is done when all of them have answered."""
        fed = {s.input for s in self.stages}
        return [s for s in self.stages if s.name not in fed]

    def stage(self, name: str) -> Stage:
        """The stage named ``name``."""
        return next(s for s in self.stages if s.name == name)

    def children(self, name: str) -> list[str]:
        """The stages ``name``'s answers feed."""
        return [s.name for s in self.stages if s.input == name]

    def edges(self) -> dict[str, list[str]]:
        """Each stage's children (the frontend's routing table)."""
        return {s.name: self.children(s.name) for s in self.stages}


def config_id(spec: PipelineSpec, config: dict[str, StageConfig]) -> str:
    """``<pipeline>-<stage>.r1c1b64-<stage>...``: the configuration's canonical id."""
    return "-".join([spec.name, *(f"{s.name}.{config[s.name].tag()}" for s in spec.stages)])


def load_pipeline(path_or_name: str) -> PipelineSpec:
    """Read and check a pipeline file; a bare name (``image_driver_1``) is a built-in description."""
    import yaml  # here, not at import: the container images run the CLI without it

    path = Path(path_or_name)
    if not path.exists() and (BUILTIN_DIR / f"{path_or_name}.yaml").exists():
        path = BUILTIN_DIR / f"{path_or_name}.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline file {path_or_name}: {exc.strerror}; give a YAML file or "
                            f"a built-in name ({', '.join(builtin_names())})") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_pipeline(doc, str(path))


def builtin_names() -> list[str]:
    """The pipelines shipped in examples/pipelines/."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def parse_pipeline(doc: Any, source: str = "<pipeline>") -> PipelineSpec:
    """A checked PipelineSpec from a loaded YAML document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict) or not doc["stages"]:
        raise PipelineError(f"{source}: a pipeline file needs a 'stages' mapping of stage names to stages")
    name = str(doc.get("name") or Path(source).stem).replace("_", "-")
    if not NAME_RE.match(name):
        raise PipelineError(f"{source}: pipeline name '{name}' must be lower-case letters, digits and '-'")
    stages = tuple(_stage(source, n, body) for n, body in doc["stages"].items())
    _check_graph(source, stages)
    spec = PipelineSpec(name, stages, (), source)
    configs = _configurations(source, spec, doc.get("configurations"))
    return PipelineSpec(name, stages, configs, source)


def _stage(source: str, name: Any, body: Any) -> Stage:
    where = f"{source}: stage '{name}'"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PipelineError(f"{where}: stage names must be lower-case letters, digits and '-' (Clipper's rule)")
    if not isinstance(body, dict) or "model" not in body:
        raise PipelineError(f"{where} needs 'model: <one of the registry's models>'")
    unknown = set(body) - STAGE_KEYS
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {sorted(unknown)}; a stage takes {sorted(STAGE_KEYS)}")
    try:
        get_model_spec(str(body["model"]))
    except UnknownModelError as exc:
        raise PipelineError(f"{where}: {exc}") from None
    options = body.get("options") or {}
    if not isinstance(options, dict) or set(options) - option_keys():
        raise PipelineError(f"{where}: 'options' takes {sorted(option_keys())}")
    lists = {key: _int_list(where, key, body.get(key, default), minimum)
             for key, default, minimum in (("replicas", [1], 1), ("batch_sizes", [1], 1),
                                           ("cpus_per_replica", [1], 1), ("gpus", [], 0))}
    return Stage(name, str(body["model"]), body.get("input"), lists["replicas"], lists["batch_sizes"],
                 lists["cpus_per_replica"], lists["gpus"], dict(options))


def _int_list(where: str, key: str, value: Any, minimum: int) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values):
        raise PipelineError(f"{where}: '{key}' must be a list of whole numbers of at least {minimum}, got {value!r}")
    if key != "gpus" and not values:
        raise PipelineError(f"{where}: '{key}' needs at least one value")
    return tuple(values)


def _check_graph(source: str, stages: tuple[Stage, ...]) -> None:
    """Every input names a stage, inputs form no cycle, and the entry stages take the same input."""
    names = {s.name for s in stages}
    parent = {s.name: s.input for s in stages}
    for s in stages:
        if s.input is not None and s.input not in names:
            raise PipelineError(f"{source}: stage '{s.name}' takes its input from '{s.input}', which is not a "
                                f"stage ({', '.join(sorted(names))}); name one, or drop 'input' to feed it the query")
        seen, node = [s.name], s.input
        while node is not None:
            if node in seen:
                raise PipelineError(f"{source}: the stages {' -> '.join([*seen, node])} form a cycle, so no "
                                    "query can reach them; one of them must take its input from the query")
            seen.append(node)
            node = parent[node]
    entries = [get_model_spec(s.model) for s in stages if s.input is None]
    kinds = {(m.input_type, m.input_shape if len(m.input_shape) != 3 else m.input_shape[2:]) for m in entries}
    if len(kinds) > 1:
        raise PipelineError(f"{source}: the query enters {', '.join(s.name for s in stages if s.input is None)}, "
                            "whose models take different inputs; entry stages must take the same input (images "
                            "of different sizes are resized by the frontend, other inputs must match)")


def query_model(spec: PipelineSpec) -> str:
    """The registry model whose inputs the load generator sends: the entry stage with the largest
    input (the frontend resizes images down for entry stages that take smaller ones)."""
    return max((s.model for s in spec.entries), key=lambda m: get_model_spec(m).input_size)


def _configurations(source: str, spec: PipelineSpec, listed: Any) -> tuple[dict[str, StageConfig], ...]:
    """The cross product of every stage's lists, or the ``configurations`` tuples of the file."""
    if listed is None:
        axes = [[(s.name, StageConfig(r, b, c)) for r in s.replicas for c in s.cpus_per_replica for b in s.batch_sizes]
                for s in spec.stages]
        return tuple(dict(combo) for combo in itertools.product(*axes))
    if not isinstance(listed, list) or not listed:
        raise PipelineError(f"{source}: 'configurations' must be a list of mappings stage -> "
                            "{replicas, batch_size, cpus_per_replica}")
    return tuple(_one_configuration(source, spec, k, entry) for k, entry in enumerate(listed, 1))


def _one_configuration(source: str, spec: PipelineSpec, k: int, entry: Any) -> dict[str, StageConfig]:
    where = f"{source}: configuration {k}"
    if not isinstance(entry, dict) or set(entry) - {s.name for s in spec.stages}:
        raise PipelineError(f"{where} must map stage names ({', '.join(s.name for s in spec.stages)}) to values")
    out = {}
    for s in spec.stages:
        given = entry.get(s.name) or {}
        if not isinstance(given, dict) or set(given) - set(SWEPT):
            raise PipelineError(f"{where}, stage '{s.name}': give any of {sorted(SWEPT)}")
        values = {key: given.get(key, getattr(s, attr)[0]) for key, attr in SWEPT.items()}
        for key, value in values.items():
            _int_list(f"{where}, stage '{s.name}'", key, value, 1)
        out[s.name] = StageConfig(values["replicas"], values["batch_size"], values["cpus_per_replica"])
    return out
