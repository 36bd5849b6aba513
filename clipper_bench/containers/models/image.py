"""The image featurizers of image_driver_1: VGG16 (fc2, 4096-d) and Inception V3 (global pool, 2048-d).

Two implementations behind one interface, chosen with ``--framework``:

* ``torch``: torchvision's models in native PyTorch (the fast one: channels_last, bf16 autocast);
* ``keras``: ``keras.applications`` on the backend named by ``KERAS_BACKEND`` (TensorFlow by
  default, as the original used TensorFlow; ``jax`` and ``torch`` work too).

Weights are random, drawn from ``--seed`` (no hub downloads), unless ``--weights PATH`` names a local
file (a torchvision state dict, or Keras weights for the full application model). A replica uses the
GPU in its ``CUDA_VISIBLE_DEVICES``, or the CPU when it was given none.

Inputs are images of uint8 pixels, height x width x 3, sent as Clipper ``bytes`` (a quarter of the
float32 size on the wire); the model scales them to [-1, 1] on its device. Each output is the
feature vector as base64 of little-endian float32 (decode with
``np.frombuffer(base64.b64decode(s), "<f4")``): exact, and cheap enough not to limit a GPU.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...protocol.types import InputType
from .base import Model, ModelOptions, ModelSpec, register

ARCHS = {
    # name: (image side, feature width)
    "vgg": (224, 4096),
    "inception": (299, 2048),
}


class ModelLoadError(RuntimeError):
    """A model's framework or weights could not be loaded; the message says how to fix it."""


def encode_features(features: np.ndarray) -> list[bytes]:
    """One base64 string of little-endian float32 per row."""
    rows = np.ascontiguousarray(features, dtype="<f4")
    return [base64.b64encode(row.tobytes()) for row in rows]


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def base64_rows(torch, features):
    """Each row of a float32 matrix as base64 of its little-endian bytes, computed where the matrix
    is (on the GPU for a GPU replica): a uint8 matrix of ASCII, one row per output, equal to
    :func:`encode_features` row by row. Encoding on the GPU takes it off the replica's one Python
    thread, where ``base64.b64encode`` of every row cost a fifth of its time at VGG16's batch 32."""
    raw = features.float().contiguous().view(torch.uint8)  # n x 4w, little-endian on CPUs and GPUs
    n, size = raw.shape
    pad = (-size) % 3
    if pad:
        raw = torch.nn.functional.pad(raw, (0, pad))
    triples = raw.view(n, -1, 3).to(torch.int32)
    bits = (triples[..., 0] << 16) | (triples[..., 1] << 8) | triples[..., 2]
    sextets = torch.stack([(bits >> 18) & 63, (bits >> 12) & 63, (bits >> 6) & 63, bits & 63], dim=-1)
    text = _alphabet(torch, features.device)[sextets.view(n, -1)]
    if pad:
        text[:, -pad:] = ord("=")
    return text


_ALPHABETS: dict = {}


def _alphabet(torch, device):
    """The base64 alphabet on ``device``, copied there once: a copy from pageable memory per batch
    would wait for the GPU's queued work and undo every overlap."""
    table = _ALPHABETS.get(device)
    if table is None:
        table = _ALPHABETS[device] = torch.frombuffer(bytearray(_BASE64_ALPHABET), dtype=torch.uint8).to(device)
    return table


def base64_width(width: int) -> int:
    """Characters of :func:`base64_rows`'s output for a row of ``width`` float32."""
    return 4 * -(-4 * width // 3)


def split_rows(text: np.ndarray) -> list[bytes]:
    """One output per row of an ASCII matrix (copies: the matrix's buffer is reused)."""
    data = text.tobytes()
    width = text.shape[1]
    return [data[i * width:(i + 1) * width] for i in range(text.shape[0])]


def decode_features(output: bytes | str) -> np.ndarray:
    """The inverse of :func:`encode_features` for one output."""
    return np.frombuffer(base64.b64decode(output), dtype="<f4")


def _thread_count() -> int:
    return len(os.sched_getaffinity(0))


class TorchImageModel(Model):
    """torchvision VGG16 or Inception V3, truncated to the features the original served."""

    def __init__(self, arch: str, opts: ModelOptions) -> None:
        try:
            import torch
            import torchvision
        except ImportError as exc:
            raise ModelLoadError(
                "--framework torch needs PyTorch and torchvision: pip install '.[torch]'"
            ) from exc
        self.torch = torch
        torch.set_num_threads(_thread_count())
        self.side, self.width = ARCHS[arch]
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        tf32 = opts.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        self.bf16 = opts.precision == "bf16"
        torch.manual_seed(opts.seed)
        if arch == "vgg":
            net = torchvision.models.vgg16(weights=None)
        else:
            net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
        if opts.weights:
            state = torch.load(opts.weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=False)
        if arch == "vgg":
            net.classifier = net.classifier[:5]  # fc1, relu, dropout, fc2, relu: the 4096-d fc2
        else:
            net.fc = torch.nn.Identity()  # global average pool: 2048-d
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        self.on_gpu = self.device.type == "cuda"
        self.overlaps_batches = self.on_gpu and opts.overlap_batches in ("on", "auto")
        # pinned host buffers for uploads and downloads (one copy of each image, asynchronous
        # transfers), one set per batch that may be in flight
        self._slots = [_PinnedSlot() for _ in range(PIPELINE_SLOTS)] if self.on_gpu else []
        self._next_slot = 0
        self._copy_threads = min(_thread_count(), MAX_COPY_THREADS) if self.on_gpu else 1
        self._copiers = ThreadPoolExecutor(self._copy_threads, "pinned-copy") if self._copy_threads > 1 else None
        if opts.cuda_graphs == "on" and not self.on_gpu:
            raise ModelLoadError("--cuda_graphs on needs a GPU: give the replicas one with -g/--model_gpus")
        # captured forward passes, one per power-of-two batch size (see _graph_forward)
        graphs = opts.cuda_graphs == "on" or (opts.cuda_graphs == "auto" and self.on_gpu)
        self._graphs: _CudaGraphs | None = _CudaGraphs(torch, self._forward) if graphs else None

    def warm_batch_sizes(self, max_batch: int) -> list[int]:
        """With CUDA graphs, every power of two up to ``max_batch`` rounded up (so that each graph
        is captured at load); else ``max_batch``."""
        if self._graphs is None:
            return [max_batch]
        # every graph a batch of up to max_batch can run in, captured at load (before serving)
        return [1 << k for k in range(_bucket(max_batch).bit_length())]

    def forward_on_device(self, x):
        """Features of a uint8 NHWC batch on the GPU, through a captured graph when they are on."""
        return self._forward(x) if self._graphs is None else self._graphs.run(x)

    def _forward(self, x):
        """Features of a uint8 NHWC batch already on the model's device."""
        # NHWC uint8 -> NCHW view with channels_last strides, scaled to [-1, 1]
        x = x.permute(0, 3, 1, 2).float().mul_(1 / 127.5).sub_(1.0)
        # no cast cache: it would outlive a graph capture (the cast weights are recomputed per pass anyway)
        with self.torch.autocast(self.device.type, dtype=self.torch.bfloat16, enabled=self.bf16, cache_enabled=False):
            return self.net(x).float()

    def submit(self, inputs: Sequence[np.ndarray]):
        """On a GPU: copy the images into a pinned slot, then queue the upload, the forward pass and
        the download of the features, and return at once; :meth:`finish` waits for them. So the CPU
        fills the next batch and encodes the last one while the GPU computes this one."""
        if not self.on_gpu:
            return self.predict(inputs)
        torch, n = self.torch, len(inputs)
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        slot.wait()  # the batch that used this slot has been finished (its buffers are free)
        host_in, host_out = slot.buffers(torch, n, (self.side, self.side, 3), base64_width(self.width))
        self._fill(host_in.numpy().reshape(n, -1), inputs)
        with torch.inference_mode():
            y = self.forward_on_device(host_in.to(self.device, non_blocking=True))
            host_out.copy_(base64_rows(torch, y), non_blocking=True)
        slot.done = torch.cuda.Event()
        slot.done.record()
        return slot, n

    def ready(self, handle) -> bool:
        """Whether the batch of ``handle`` is done (always on the CPU, where :meth:`submit` answers)."""
        return not self.on_gpu or handle[0].done is None or handle[0].done.query()

    def finish(self, handle) -> list[bytes]:
        """The outputs of a submitted batch, waiting for its GPU work (on the CPU: the handle)."""
        if not self.on_gpu:
            return handle
        slot, n = handle
        slot.wait()
        return split_rows(slot.out[:n].numpy())

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """Base64 features of each image: through a pinned slot on a GPU, directly on the CPU."""
        if self.on_gpu:  # through the pinned slots, one batch at a time
            return self.finish(self.submit(inputs))
        torch, n = self.torch, len(inputs)
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(inputs).reshape(n, self.side, self.side, 3)).to(self.device)
            return split_rows(base64_rows(torch, self._forward(x)).numpy())

    def _fill(self, flat: np.ndarray, inputs: Sequence[np.ndarray]) -> None:
        """Copy the images into the pinned rows ``flat``, in parallel on the replica's cores (numpy
        copies release the GIL): one core copying 4.8 MB a batch cost VGG16 an eighth of its time."""
        chunks = _chunks(len(inputs), self._copy_threads)

        def copy(chunk: range) -> None:
            for i in chunk:
                flat[i] = inputs[i]

        if self._copiers is None or len(chunks) == 1:
            copy(range(len(inputs)))
        else:
            list(self._copiers.map(copy, chunks))


def _chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` runs of nearly equal length, at least 4 items each."""
    parts = max(1, min(parts, n // 4))
    step = -(-n // parts)
    return [range(i, min(i + step, n)) for i in range(0, n, step)]


class KerasImageModel(Model):
    """keras.applications VGG16 (fc2) or InceptionV3 (pooling="avg")."""

    def __init__(self, arch: str, opts: ModelOptions) -> None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices, not its errors
        try:
            import keras
        except ImportError as exc:
            raise ModelLoadError(
                f"--framework keras needs Keras and its backend ({os.environ['KERAS_BACKEND']}): "
                "pip install '.[keras]' and the backend's package"
            ) from exc
        self.keras = keras
        self.backend = keras.backend.backend()
        self.side, self.width = ARCHS[arch]
        _keras_precision(self.backend, opts.precision)
        keras.utils.set_random_seed(opts.seed)
        if opts.precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        if arch == "vgg":
            base = keras.applications.VGG16(weights=None, include_top=True)
            if opts.weights:
                base.load_weights(opts.weights)
            self.net = keras.Model(base.input, base.get_layer("fc2").output)
        else:
            base = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg",
                                                  input_shape=(self.side, self.side, 3))
            if opts.weights:
                base.load_weights(opts.weights)
            self.net = base

    def warm_batch_sizes(self, max_batch: int) -> list[int]:
        """Every power of two up to ``max_batch`` rounded up: the sizes :meth:`predict` pads batches to."""
        # every bucket a batch of up to max_batch can be padded to (see predict)
        return [1 << k for k in range(_bucket(max_batch).bit_length())]

    def predict(self, inputs: Sequence[np.ndarray]) -> list[bytes]:
        """Base64 features of each image, the batch zero-padded to a power of two so that
        compiling backends compile few shapes."""
        n = len(inputs)
        # Compiling backends (JAX's jit, tf.function) compile once per batch shape, and a serving
        # replica sees every size from 1 to its batch size: pad to the next power of two so that
        # only log2(batch size) + 1 shapes are ever compiled (all of them at load, by warm-up).
        batch = np.zeros((_bucket(n), self.side, self.side, 3), dtype=np.uint8)
        batch[:n] = np.stack(inputs).reshape(n, self.side, self.side, 3)
        x = batch.astype(np.float32) * (1 / 127.5) - 1.0
        # predict_on_batch runs the backend's compiled predict step (jit on JAX, tf.function on
        # TensorFlow); calling the model directly would run op by op.
        features = np.asarray(self.net.predict_on_batch(x), dtype=np.float32)[:n]
        return encode_features(features)


MAX_COPY_THREADS = 4  # threads that copy a batch's images into pinned memory
PIPELINE_SLOTS = 3  # batches a GPU replica may have between submit and finish, plus one being filled


class _PinnedSlot:
    """Pinned host memory for one batch's images and features, and the event that frees it."""

    def __init__(self) -> None:
        self.inp = self.out = None
        self.done = None  # CUDA event recorded after the batch's download was queued

    def wait(self) -> None:
        if self.done is not None:
            self.done.synchronize()
            self.done = None

    def buffers(self, torch, n: int, image_shape: tuple[int, ...], width: int):
        if self.inp is None or self.inp.shape[0] < n:
            self.inp = torch.empty((n, *image_shape), dtype=torch.uint8).pin_memory()
            self.out = torch.empty((n, width), dtype=torch.uint8).pin_memory()  # base64 text
        return self.inp[:n], self.out[:n]


class _CudaGraphs:
    """The forward pass captured as CUDA graphs, one per power-of-two batch size.

    A replay launches the whole network as one graph, so a launch-bound model (Inception V3 at small
    batches) runs at the GPU's speed instead of Python's. Each graph reads a static input buffer
    and writes a static output buffer; a batch of ``n`` is copied into the first ``n`` rows of the
    smallest graph that holds it (the rest is left over from earlier batches and ignored) and its
    ``n`` feature rows are read back. Copies, replay and the read-back are queued on the current
    stream, so batches in flight one after the other never share a buffer at the same time.
    """

    def __init__(self, torch, forward) -> None:
        self.torch = torch
        self.forward = forward
        self.pool = torch.cuda.graph_pool_handle()  # the graphs share one memory pool
        self.graphs: dict[int, tuple] = {}  # bucket -> (graph, static input, static output)

    def _capture(self, bucket: int, like):
        torch = self.torch
        static_in = torch.zeros((bucket, *like.shape[1:]), dtype=like.dtype, device=like.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up runs choose kernels outside the capture
            for _ in range(2):
                self.forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            static_out = self.forward(static_in)
        self.graphs[bucket] = (graph, static_in, static_out)
        return self.graphs[bucket]

    def run(self, x):
        """Features of batch ``x`` (on the GPU); the result is a view valid until the next call."""
        n = x.shape[0]
        bucket = _bucket(n)
        graph, static_in, static_out = self.graphs.get(bucket) or self._capture(bucket, x)
        static_in[:n].copy_(x, non_blocking=True)
        graph.replay()
        return static_out[:n]


def _bucket(n: int) -> int:
    """The smallest power of two that is at least ``n``."""
    return 1 << (max(n, 1) - 1).bit_length()


def _keras_precision(backend: str, precision: str) -> None:
    """Allow or forbid TF32 matmuls in the Keras backend (bf16 is a Keras policy)."""
    tf32 = precision == "tf32"
    if backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_num_threads(_thread_count())
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(tf32)
        tf.config.threading.set_intra_op_parallelism_threads(_thread_count())


def build_image_model(arch: str, opts: ModelOptions) -> Model:
    """The ``arch`` featurizer in the framework ``opts`` asks for."""
    if opts.framework == "torch":
        return TorchImageModel(arch, opts)
    if opts.framework == "keras":
        return KerasImageModel(arch, opts)
    raise ModelLoadError(f"unknown framework '{opts.framework}': use torch or keras")


for _name, (_side, _width) in ARCHS.items():
    register(
        ModelSpec(
            name=_name,
            input_type=InputType.BYTES,
            input_shape=(_side, _side, 3),
            description=f"{'VGG16 fc2' if _name == 'vgg' else 'Inception V3 global pool'} features "
                        f"of a {_side}x{_side}x3 uint8 image",
            build=lambda opts, arch=_name: build_image_model(arch, opts),
            uses_gpu=True,
            output_description=f"{_width} float32 features, base64",
        )
    )
