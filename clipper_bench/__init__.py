"""clipper-bench: a benchmark driver for model serving in the style of Clipper's image_driver_1."""

from .common.pinning import pin_from_environment as _pin_from_environment

__version__ = "0.1.0"

# Processes the engine starts (replicas, baselines, frontend, clients) carry their cores in
# CLIPPER_BENCH_CPUS. Pin here, before any submodule imports numpy: BLAS and OpenMP size their
# thread pools when they load, and a pool of 2 spinning threads on 1 pinned core runs 50x slower.
_pin_from_environment()


def __getattr__(name: str):
    """``clipper_bench.load_results`` and ``load_queries``, imported (with pandas) on first use."""
    if name in ("load_results", "load_queries"):
        from .results import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'clipper_bench' has no attribute {name!r}")
