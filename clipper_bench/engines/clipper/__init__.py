"""``--engine clipper``: a Clipper that is already running. The engine (``engine.py``:
:class:`AttachedEngine`) and its container manager (``manager.py``: replicas started here that connect
to the running Clipper, and removed with what this run registered). Nothing is imported here."""
