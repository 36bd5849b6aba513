"""``--engine local`` (the default): our Clipper-compatible server (:mod:`clipper_bench.server`) as local
processes. The engine (``engine.py``: :class:`LocalEngine` and the deployment the docker and clipper
engines build on) and its options (``options.py``). Nothing is imported here, so that the settings can
read the options without loading the engine."""
