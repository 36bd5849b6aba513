"""Wire formats: Clipper's model-container RPC and clipper-bench's binary query path."""
