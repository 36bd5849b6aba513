"""The ground floor every layer may use: process spawning and reaping, core pinning, ZeroMQ on
asyncio, Ray's environment, command-line value types and the base errors. It imports nothing else
of clipper-bench (import-linter checks the layers, see pyproject.toml)."""
