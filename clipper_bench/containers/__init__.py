"""Model containers: the model registry and the process that serves one model over Clipper's RPC."""
