"""``clipper-bench build-models``: train the classical models on generated data and write them,
beside the models they build."""

from __future__ import annotations

import argparse
from pathlib import Path

from ...common.cli_types import check_writable_dir


def add_build_parser(sub: argparse._SubParsersAction) -> None:
    """The ``build-models`` command and its flags."""
    from .classical import ClassicalBuildSettings

    d = ClassicalBuildSettings()
    p = sub.add_parser(
        "build-models",
        help="train kpca-svm and lgbm on generated data and write them with a manifest",
        description="Train the classical models on seeded generated data; write the artifacts and "
                    "manifest.json (library versions, seeds, sizes, shapes) into the models directory. "
                    "run does this on first use with the defaults.",
    )
    p.add_argument("--models_dir", type=Path, default=Path("models"),
                   help="where the artifacts and manifest.json go (default models/)")
    p.add_argument("--models", nargs="+", choices=["kpca-svm", "lgbm"], default=["kpca-svm", "lgbm"],
                   help="which to build (default both)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the generated data (default {d.seed})")
    p.add_argument("--kpca_train_rows", type=int, default=d.kpca_train_rows,
                   help=f"rows the kernel PCA keeps; its cost per query grows with them (default {d.kpca_train_rows})")
    p.add_argument("--kpca_components", type=int, default=d.kpca_components,
                   help=f"kernel PCA components fed to the SVM (default {d.kpca_components})")
    p.add_argument("--lgbm_train_rows", type=int, default=d.lgbm_train_rows,
                   help=f"rows LightGBM trains on (default {d.lgbm_train_rows})")
    p.add_argument("--lgbm_trees", type=int, default=d.lgbm_trees, help=f"boosting rounds (default {d.lgbm_trees})")
    p.add_argument("--lgbm_leaves", type=int, default=d.lgbm_leaves,
                   help=f"leaves per tree (default {d.lgbm_leaves})")
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    """Check the sizes, train the models asked for and print where each went."""
    from ...common.errors import UsageError
    from .classical import ClassicalBuildSettings, build_models

    for flag in ("kpca_train_rows", "kpca_components", "lgbm_train_rows", "lgbm_trees", "lgbm_leaves"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1")
    if args.kpca_components > args.kpca_train_rows:
        raise UsageError("--kpca_components cannot exceed --kpca_train_rows")
    settings = ClassicalBuildSettings(
        seed=args.seed, kpca_train_rows=args.kpca_train_rows, kpca_components=args.kpca_components,
        lgbm_train_rows=args.lgbm_train_rows, lgbm_trees=args.lgbm_trees, lgbm_leaves=args.lgbm_leaves,
    )
    check_writable_dir(args.models_dir, "--models_dir", "models directory")
    manifest = build_models(args.models_dir, settings, args.models)
    for name in args.models:
        entry = manifest["models"][name]
        print(f"{name}: {args.models_dir / entry['artifact']} (trained in {entry['fit_seconds']:.1f} s, "
              f"train accuracy {entry['train_accuracy']:.3f})")
    print(f"manifest: {args.models_dir / 'manifest.json'}")
    return 0
