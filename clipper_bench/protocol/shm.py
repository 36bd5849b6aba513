"""The shared-memory transport (``--transport shm``): inputs stay in a region, descriptors travel.

In the spirit of Triton's system shared memory (perf_analyzer ``--shared-memory system``): a load
client on the engine's host writes its pre-generated input pool once into a POSIX shared-memory
region (a file under ``/dev/shm``), and each query carries only a small *descriptor* of where its
input lies. The frontend checks the descriptor and passes it on unchanged; the replica maps the
region read-only and reads the input in place. No input byte crosses a socket or the frontend.

Descriptor (one frame per input, little-endian)::

    u64 offset | u64 length | region name (UTF-8, ``cb-shm-`` then lower-case letters, digits, '-')

On the binary query path a request whose header has ``FLAG_SHM`` carries descriptors as its input
frames. Towards a replica, a batch of such inputs is sent with the RPC request type
``PREDICT_SHM`` (see :mod:`clipper_bench.protocol.rpc`); outputs come back as ordinary frames (they
are small: 16 bytes to 22 KB, against 150 KB inputs, and a region per answer would need slots the
client hands out per query in flight).

A region is used only if it is what a load client made: a regular file (never followed through a
symbolic link: opened with ``O_NOFOLLOW``), owned by this user, non-empty and holding the input's
span. Anything else under a ``cb-shm-`` name in ``/dev/shm`` is refused with the reason, so a
planted link cannot make a replica read another file as its input.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import struct
from collections import OrderedDict
from pathlib import Path

SHM_DIR = Path("/dev/shm")
NAME_PREFIX = "cb-shm-"
NAME_PATTERN = re.compile(r"cb-shm-[a-z0-9-]{1,80}\Z")
DESCRIPTOR = struct.Struct("<QQ")
FLAG_SHM = 1

Buffer = bytes | memoryview


class ShmError(ValueError):
    """A descriptor or region that cannot be used; the message says which and why."""


def region_name(owner_pid: int, client_index: int) -> str:
    """The region name of one load client (its pid makes it unique on the host)."""
    return f"{NAME_PREFIX}{owner_pid}-{client_index}"


def encode_descriptor(name: str, offset: int, length: int) -> bytes:
    """One input's descriptor."""
    return DESCRIPTOR.pack(offset, length) + name.encode()


def decode_descriptor(frame: Buffer) -> tuple[str, int, int]:
    """(region name, offset, length) of a descriptor; ShmError if it is not one."""
    view = memoryview(frame)  # also a zmq.Frame, which cannot be sliced itself
    if len(view) <= DESCRIPTOR.size:
        raise ShmError(f"a shared-memory descriptor needs {DESCRIPTOR.size} bytes and a region name")
    offset, length = DESCRIPTOR.unpack_from(view)
    try:
        name = bytes(view[DESCRIPTOR.size:]).decode("ascii")
    except UnicodeDecodeError:
        raise ShmError("a shared-memory region name must be ASCII") from None
    if not NAME_PATTERN.match(name):
        raise ShmError(f"shared-memory region name {name[:90]!r} must match {NAME_PATTERN.pattern}")
    return name, offset, length


def check_region(name: str, st: os.stat_result) -> None:
    """Raise ShmError unless ``st`` (of region ``name``, not followed through a link) is a load
    client's region: a regular file of this user, not empty."""
    if stat.S_ISLNK(st.st_mode):
        raise ShmError(f"shared-memory region {name} is a symbolic link; regions are never followed")
    if not stat.S_ISREG(st.st_mode):
        raise ShmError(f"shared-memory region {name} is not a regular file")
    if st.st_uid != os.geteuid():
        raise ShmError(f"shared-memory region {name} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})")
    if st.st_size <= 0:
        raise ShmError(f"shared-memory region {name} is empty")


def check_descriptor(frame: Buffer, expected_length: int | None) -> None:
    """Check a descriptor against the region it names (a load client's region, see
    :func:`check_region`, that holds the span) and the input size the model declared; raise
    ShmError with the reason otherwise."""
    name, offset, length = decode_descriptor(frame)
    if expected_length is not None and length != expected_length:
        raise ShmError(f"input has {length} bytes; the model takes {expected_length} bytes per input")
    try:
        st = os.lstat(SHM_DIR / name)
    except OSError:
        raise ShmError(f"shared-memory region {name} does not exist on this host") from None
    check_region(name, st)
    if offset + length > st.st_size:
        raise ShmError(f"input at {offset}+{length} lies outside region {name} of {st.st_size} bytes")


class ShmPool:
    """A load client's region: the whole input pool written once; removed by :meth:`close`."""

    def __init__(self, name: str, items: list[bytes]) -> None:
        self.name = name
        self.path = SHM_DIR / name
        remove_stale_regions()  # what clients killed with their driver left behind
        item_bytes = len(items[0]) if items else 0
        size = max(item_bytes * len(items), 1)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                free = os.statvfs(SHM_DIR)
                raise ShmError(
                    f"{SHM_DIR} has {free.f_bavail * free.f_frsize / 2**20:.0f} MiB free; the input pool needs "
                    f"{size / 2**20:.0f} MiB ({exc.strerror}): enlarge {SHM_DIR} or use --transport binary"
                ) from None
            with mmap.mmap(fd, size) as region:
                for i, item in enumerate(items):
                    region[i * item_bytes:(i + 1) * item_bytes] = item
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        self.descriptors = [encode_descriptor(name, i * item_bytes, item_bytes) for i in range(len(items))]

    def close(self) -> None:
        """Remove the region (mappings still open elsewhere stay valid until they close)."""
        self.path.unlink(missing_ok=True)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_regions() -> list[str]:
    """Remove this user's regions whose client is no longer running (a client killed with its
    driver, by the kernel's SIGKILL, cannot remove its own); return their names. Links and other
    users' files are left alone."""
    removed = []
    for path in SHM_DIR.glob(f"{NAME_PREFIX}*"):
        pid = path.name[len(NAME_PREFIX):].split("-", 1)[0]
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not pid.isdigit() or not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or _pid_running(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def remove_regions_of(pids: list[int]) -> list[str]:
    """Remove the regions clients with these pids left behind (killed before they could); return their names."""
    removed = []
    for pid in pids:
        for path in SHM_DIR.glob(f"{NAME_PREFIX}{pid}-*"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


class ShmReader:
    """A replica's read-only view of the regions its inputs lie in (a few kept mapped)."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()

    def read(self, frame: Buffer) -> memoryview:
        """The input a descriptor points to, in place (no copy)."""
        name, offset, length = decode_descriptor(frame)
        region = self._maps.get(name)
        if region is None:
            region = self._open(name)
        else:
            self._maps.move_to_end(name)
        if offset + length > len(region):
            raise ShmError(f"input at {offset}+{length} lies outside region {name} of {len(region)} bytes")
        return memoryview(region)[offset:offset + length]

    def _open(self, name: str) -> mmap.mmap:
        # regions of clients that finished are unlinked: let go of their memory
        for gone in [n for n in self._maps if not (SHM_DIR / n).exists()]:
            self._release(gone)
        while len(self._maps) >= self.keep:
            self._release(next(iter(self._maps)))
        try:
            fd = os.open(SHM_DIR / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if os.path.islink(SHM_DIR / name):
                raise ShmError(f"shared-memory region {name} is a symbolic link; regions are never followed") from None
            raise ShmError(f"shared-memory region {name} does not exist on this host ({exc.strerror})") from None
        try:
            check_region(name, os.fstat(fd))  # what was opened, not what the name points to later
            region = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._maps[name] = region
        return region

    def _release(self, name: str) -> None:
        region = self._maps.pop(name)
        try:
            region.close()
        except BufferError:  # a view is still alive somewhere: it is dropped with its last user
            pass

    def close(self) -> None:
        """Unmap every region."""
        for name in list(self._maps):
            self._release(name)
