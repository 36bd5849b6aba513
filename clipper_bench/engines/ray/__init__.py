"""``--engine ray``: the engine (``engine.py``: :class:`RayEngine`, its deployment, clients and power
samplers on the cluster) and the Ray Serve application it deploys (``serve_app.py``: the models as Serve
deployments, imported by every Serve replica). Nothing is imported here: a Serve replica that imports
``serve_app`` loads none of the sweep."""
