"""``--engine docker``: the engine (``engine.py``: :class:`DockerEngine`, the local engine's deployment
over another container manager) and its container manager (``manager.py``: clipper_admin's
DockerContainerManager with each replica pinned). Nothing is imported here, so that the registry
loads Docker's libraries only when ``--engine docker`` is asked for."""
