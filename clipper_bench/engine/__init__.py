"""The local engine: a Clipper-compatible cluster on this host, and its container manager."""
