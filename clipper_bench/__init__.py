"""clipper-bench: a benchmark driver for model serving in the style of Clipper's image_driver_1."""

__version__ = "0.1.0"
