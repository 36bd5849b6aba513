"""The classifiers of image_driver_1: an RBF kernel PCA followed by an SVC, and a LightGBM model.

The originals' training data were never published, so both are trained at build time
(``clipper-bench build-models``) on generated data of the right width, seeded, and every size that
decides their cost is recorded in the models directory's ``manifest.json``. The kernel PCA compares
each query with every stored training row, so ``kpca_train_rows`` sets its cost per query.

Artifacts are written and read only by this module, from the local models directory: the sklearn
pipeline with joblib, the LightGBM booster in its own text format.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ...protocol.types import InputType
from .base import Model, ModelOptions, ModelSpec, register

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ClassicalBuildSettings:
    """Sizes of the trained models (all recorded in the manifest)."""

    seed: int = 0
    kpca_train_rows: int = 2000
    kpca_components: int = 128
    kpca_width: int = 4096
    svm_c: float = 1.0
    lgbm_train_rows: int = 2000
    lgbm_width: int = 2048
    lgbm_trees: int = 100
    lgbm_leaves: int = 31
    num_classes: int = 2


def _versions(*dists: str) -> dict[str, str | None]:
    out = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def generated_dataset(rows: int, width: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features like ReLU activations (non-negative, sparse-ish) and labels from a seeded linear rule."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(0.0, 1.0, (rows, width)), 0.0).astype(np.float32)
    w = rng.normal(0.0, 1.0, (width, num_classes))
    y = np.argmax(x @ w + rng.normal(0.0, 0.5, (rows, num_classes)), axis=1)
    return x, y


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_kpca_svm(models_dir: Path, s: ClassicalBuildSettings) -> dict:
    import joblib
    from sklearn.decomposition import KernelPCA
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    x, y = generated_dataset(s.kpca_train_rows, s.kpca_width, s.num_classes, s.seed)
    start = time.perf_counter()
    pipe = make_pipeline(
        KernelPCA(n_components=s.kpca_components, kernel="rbf", gamma=1.0 / s.kpca_width, random_state=s.seed),
        SVC(kernel="rbf", C=s.svm_c, random_state=s.seed),
    )
    pipe.fit(x, y)
    path = models_dir / "kpca-svm.joblib"
    tmp = path.with_suffix(".tmp")
    joblib.dump(pipe, tmp)
    os.replace(tmp, path)
    return {
        "artifact": path.name,
        "sha256": _sha256(path),
        "what": "RBF KernelPCA then RBF SVC (sklearn pipeline)",
        "train_rows": s.kpca_train_rows,
        "components": s.kpca_components,
        "gamma": 1.0 / s.kpca_width,
        "svm_c": s.svm_c,
        "num_classes": s.num_classes,
        "seed": s.seed,
        "input_shape": [s.kpca_width],
        "output": "class label",
        "train_accuracy": float((pipe.predict(x) == y).mean()),
        "fit_seconds": time.perf_counter() - start,
        "libraries": _versions("scikit-learn", "numpy", "joblib"),
    }


def build_lgbm(models_dir: Path, s: ClassicalBuildSettings) -> dict:
    import lightgbm

    x, y = generated_dataset(s.lgbm_train_rows, s.lgbm_width, s.num_classes, s.seed + 1)
    start = time.perf_counter()
    clf = lightgbm.LGBMClassifier(
        n_estimators=s.lgbm_trees, num_leaves=s.lgbm_leaves, random_state=s.seed, n_jobs=os.cpu_count() or 1, verbose=-1
    )
    clf.fit(x, y)
    path = models_dir / "lgbm.txt"
    tmp = path.with_suffix(".tmp")
    clf.booster_.save_model(str(tmp))
    os.replace(tmp, path)
    return {
        "artifact": path.name,
        "sha256": _sha256(path),
        "what": "LightGBM gradient-boosted trees classifier",
        "train_rows": s.lgbm_train_rows,
        "trees": s.lgbm_trees,
        "leaves": s.lgbm_leaves,
        "num_classes": s.num_classes,
        "seed": s.seed,
        "input_shape": [s.lgbm_width],
        "output": "class label",
        "train_accuracy": float((clf.predict(x) == y).mean()),
        "fit_seconds": time.perf_counter() - start,
        "libraries": _versions("lightgbm", "numpy"),
    }


BUILDERS = {"kpca-svm": build_kpca_svm, "lgbm": build_lgbm}


def read_manifest(models_dir: Path) -> dict:
    path = Path(models_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"models": {}}


def build_models(models_dir: Path, settings: ClassicalBuildSettings, names: Sequence[str] = tuple(BUILDERS)) -> dict:
    """Train and write the named models and update the manifest; return the manifest."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(models_dir)
    for name in names:
        manifest["models"][name] = {**BUILDERS[name](models_dir, settings), "built_at": time.time()}
    manifest["build_settings"] = asdict(settings)
    tmp = models_dir / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, models_dir / MANIFEST)
    return manifest


def ensure_built(models_dir: Path, name: str, settings: ClassicalBuildSettings | None = None) -> dict:
    """Build ``name`` on first use; return its manifest entry."""
    entry = read_manifest(models_dir)["models"].get(name)
    if entry is None or not (Path(models_dir) / entry["artifact"]).exists():
        entry = build_models(models_dir, settings or ClassicalBuildSettings(), [name])["models"][name]
    return entry


class ModelNotBuiltError(RuntimeError):
    """The model's artifact is missing: run ``clipper-bench build-models``."""


def _artifact(opts: ModelOptions, name: str) -> Path:
    entry = read_manifest(Path(opts.models_dir))["models"].get(name)
    if entry is None:
        raise ModelNotBuiltError(
            f"model '{name}' is not built in {opts.models_dir}: run clipper-bench build-models --models_dir {opts.models_dir}"
        )
    path = Path(opts.models_dir) / entry["artifact"]
    # joblib files are pickles: load only the exact bytes build-models wrote (never network data)
    if not path.exists() or _sha256(path) != entry.get("sha256"):
        raise ModelNotBuiltError(
            f"{path} is missing or differs from what build-models wrote (sha256 in manifest.json): "
            f"rebuild it with clipper-bench build-models --models_dir {opts.models_dir}"
        )
    return path


class KpcaSvmModel(Model):
    def __init__(self, opts: ModelOptions) -> None:
        import joblib

        self.pipe = joblib.load(_artifact(opts, "kpca-svm"))

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        labels = self.pipe.predict(np.stack(inputs))
        return [str(int(v)).encode() for v in labels]


class LgbmModel(Model):
    def __init__(self, opts: ModelOptions) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_file=str(_artifact(opts, "lgbm")))
        self.threads = len(os.sched_getaffinity(0))

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        proba = self.booster.predict(np.stack(inputs), num_threads=self.threads)
        labels = (proba > 0.5).astype(int) if proba.ndim == 1 else np.argmax(proba, axis=1)
        return [str(int(v)).encode() for v in labels]


register(ModelSpec(
    name="kpca-svm", input_type=InputType.FLOATS, input_shape=(4096,),
    description="RBF kernel PCA then an SVC on 4096-d (VGG) features",
    build=KpcaSvmModel, output_description="class label", needs_build=True,
))
register(ModelSpec(
    name="lgbm", input_type=InputType.FLOATS, input_shape=(2048,),
    description="LightGBM classifier on 2048-d (Inception) features",
    build=LgbmModel, output_description="class label", needs_build=True,
))
