"""The classifiers of image_driver_1: an RBF kernel PCA followed by an SVC, and a LightGBM model.

The originals' training data were never published, so both are trained at build time
(``clipper-bench build-models``) on generated data of the right width, seeded, and every size that
decides their cost is recorded in the models directory's ``manifest.json``. The kernel PCA compares
each query with every stored training row, so ``kpca_train_rows`` sets its cost per query.

Artifacts are written and read only by this module, from the local models directory: the sklearn
pipeline with skops (a format that cannot run code on load), the LightGBM booster in its own
text format.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
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


KPCA_ARTIFACT = "kpca-svm.skops"
LEGACY_ARTIFACTS = ("kpca-svm.joblib",)  # pickles written by earlier versions: rebuilt, never loaded


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_kpca_svm(models_dir: Path, s: ClassicalBuildSettings) -> dict:
    """Train the kernel PCA + SVC pipeline on generated data, write it with skops; return its
    manifest entry."""
    import skops.io
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
    path = models_dir / KPCA_ARTIFACT
    tmp = path.with_suffix(".tmp")
    skops.io.dump(pipe, tmp)
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
        "format": "skops (no code runs on load; only trusted scikit-learn and numpy types are built)",
        "libraries": _versions("scikit-learn", "numpy", "skops"),
    }


def build_lgbm(models_dir: Path, s: ClassicalBuildSettings) -> dict:
    """Train the LightGBM classifier on generated data, write its booster as text; return its
    manifest entry."""
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
    """The models directory's manifest, or ``{"models": {}}`` when it has none."""
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
    if entry is None or not (Path(models_dir) / entry["artifact"]).exists() or entry["artifact"] in LEGACY_ARTIFACTS:
        entry = build_models(models_dir, settings or ClassicalBuildSettings(), [name])["models"][name]
    return entry


VERIFY_TIMEOUT_S = 300.0


def verify_artifact(models_dir: Path, name: str) -> None:
    """Load ``name``'s artifact once as a replica would (hash, format, trusted types): raise
    ModelNotBuiltError with the fix before a sweep deploys anything, not per configuration.

    The hash is checked here; the parse runs in a child process, because LightGBM's parser aborts
    the whole process (``std::terminate``) on some damaged files: the driver must outlive a bad
    model file and say in one line what is wrong with it."""
    opts = ModelOptions(models_dir=str(models_dir))
    path, _ = _artifact(opts, name)  # missing, pickled or changed: the one-line error, no child needed
    code = ("import sys\nfrom clipper_bench.containers.models.base import ModelOptions\n"
            "from clipper_bench.containers.models.classical import ModelNotBuiltError, load_artifact_bytes\n"
            "try:\n    load_artifact_bytes(ModelOptions(models_dir=sys.argv[1]), sys.argv[2], parse=True)\n"
            "except ModelNotBuiltError as exc:\n    print('ERROR', *str(exc).split(), file=sys.stderr)\n    sys.exit(3)\n")
    root = str(Path(__file__).resolve().parents[3])  # the package runs from a checkout too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(models_dir), name], capture_output=True, text=True,
                              errors="replace", env=env, timeout=VERIFY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ModelNotBuiltError(f"{path} did not load within {VERIFY_TIMEOUT_S:.0f} s") from None
    said = [line[len("ERROR "):] for line in proc.stderr.splitlines() if line.startswith("ERROR ")]
    if proc.returncode == 3 and said:
        raise ModelNotBuiltError(said[-1])
    if proc.returncode != 0:
        how = (f"the loader was killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"the loader exited {proc.returncode}")
        raise ModelNotBuiltError(f"{path} cannot be loaded ({how}; the file is damaged): rebuild it with "
                                 f"clipper-bench build-models --models_dir {models_dir}")


class ModelNotBuiltError(RuntimeError):
    """The model's artifact is missing: run ``clipper-bench build-models``."""


def _artifact(opts: ModelOptions, name: str) -> tuple[Path, bytes]:
    """The artifact's path and bytes, read once and checked against the manifest's sha256 (the
    bytes checked are the bytes loaded). Pickled artifacts of older versions are refused."""
    rebuild = f"clipper-bench build-models --models_dir {opts.models_dir}"
    entry = read_manifest(Path(opts.models_dir))["models"].get(name)
    if entry is None:
        raise ModelNotBuiltError(f"model '{name}' is not built in {opts.models_dir}: run {rebuild}")
    path = Path(opts.models_dir) / entry["artifact"]
    if entry["artifact"] in LEGACY_ARTIFACTS:
        raise ModelNotBuiltError(f"{path} is a pickle (an older clipper-bench wrote it), which could run code "
                                 f"when loaded: rebuild it with {rebuild}")
    try:
        data = path.read_bytes()
    except OSError:
        raise ModelNotBuiltError(f"{path} is missing: rebuild it with {rebuild}") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ModelNotBuiltError(f"{path} differs from what build-models wrote (sha256 in manifest.json): "
                                 f"rebuild it with {rebuild}")
    return path, data


def load_artifact_bytes(opts: ModelOptions, name: str, parse: bool = False):
    """The checked artifact of ``name``; with ``parse``, the loaded model object (skops for
    kpca-svm, refusing any type outside skops' trusted set; LightGBM's text format for lgbm)."""
    path, data = _artifact(opts, name)
    if not parse:
        return path, data
    if name == "kpca-svm":
        import skops.io

        try:
            return skops.io.loads(data)  # raises on any type not trusted by default
        except Exception as exc:  # noqa: BLE001 - any refusal or damage is the same fix
            raise ModelNotBuiltError(f"{path} cannot be loaded safely ({type(exc).__name__}: {exc}): "
                                     f"rebuild it with clipper-bench build-models --models_dir {opts.models_dir}") from None
    import lightgbm

    try:
        return lightgbm.Booster(model_str=data.decode())
    except (lightgbm.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise ModelNotBuiltError(f"{path} is not a LightGBM model ({type(exc).__name__}: {str(exc)[:200]}): rebuild it with "
                                 f"clipper-bench build-models --models_dir {opts.models_dir}") from None


class KpcaSvmModel(Model):
    def __init__(self, opts: ModelOptions) -> None:
        self.pipe = load_artifact_bytes(opts, "kpca-svm", parse=True)

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """The predicted class label of each input, as ASCII digits."""
        labels = self.pipe.predict(np.stack(inputs))
        return [str(int(v)).encode() for v in labels]


class LgbmModel(Model):
    def __init__(self, opts: ModelOptions) -> None:
        self.booster = load_artifact_bytes(opts, "lgbm", parse=True)
        self.threads = len(os.sched_getaffinity(0))

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """The predicted class label of each input (probability over 0.5 when binary), as ASCII digits."""
        proba = self.booster.predict(np.stack(inputs), num_threads=self.threads)
        labels = (proba > 0.5).astype(int) if proba.ndim == 1 else np.argmax(proba, axis=1)
        return [str(int(v)).encode() for v in labels]


register(ModelSpec(
    name="kpca-svm", input_type=InputType.FLOATS, input_shape=(4096,),
    description="RBF kernel PCA then an SVC on 4096-d (VGG) features",
    build=KpcaSvmModel, output_description="class label", needs_build=True,
), aliases=("svm",))  # the original driver's name for it
register(ModelSpec(
    name="lgbm", input_type=InputType.FLOATS, input_shape=(2048,),
    description="LightGBM classifier on 2048-d (Inception) features",
    build=LgbmModel, output_description="class label", needs_build=True,
))
