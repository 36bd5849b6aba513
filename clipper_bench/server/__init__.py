"""clipper-bench's own Clipper-compatible server: the query frontend (HTTP, binary and shared-memory
query paths, Clipper's container RPC port and management API), its dispatcher, registry and metrics,
the pipeline graph, LocalContainerManager (which starts the frontend and replica processes on this
host) and ``clipper-bench serve``. The local and Docker engines (``clipper_bench.engines``) deploy it;
it knows nothing of the engines or the sweep."""
