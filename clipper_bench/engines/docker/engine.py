"""``--engine docker``: the frontend and every replica as Docker containers, through clipper_admin's
DockerContainerManager (see ``manager.py`` beside it), each replica pinned to its cores and GPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clipper_admin.container_manager import ContainerManager

from ...protocol.transports import Transport
from ...server.images import model_image
from ...server.manager import IMAGE_PREFIX, Placement
from ..local.engine import LocalEngine
from ..point import PlanError

if TYPE_CHECKING:  # the settings are the sweep's: engines read them, never import them
    from ...sweep.settings import RunSettings


class DockerEngine(LocalEngine):
    """Clipper's frontend images (or clipper-bench's own) and one container per replica."""

    name = "docker"
    transports = (Transport.BINARY, Transport.REST)
    serves_pipelines = False  # Clipper's own frontend chains nothing

    @classmethod
    def resolve_transport(cls, settings: RunSettings, large_inputs: bool) -> str:
        """``auto``: rest with Clipper's own frontend (it has nothing else), binary with clipper-bench's."""
        if settings.transport == Transport.AUTO:
            return Transport.BINARY if settings.query_frontend_image.startswith(IMAGE_PREFIX) else Transport.REST
        return settings.transport

    @classmethod
    def validate(cls, settings: RunSettings) -> None:
        """A Docker engine that answers, the images the run needs, and a transport the frontend has."""
        from clipper_admin.exceptions import ClipperException

        from .manager import docker_client_or_error

        cls.check_transport(settings)  # the images hold the model's framework: nothing to check here
        bench_frontend = settings.query_frontend_image.startswith(IMAGE_PREFIX)
        if settings.transport == Transport.BINARY and not bench_frontend:
            raise PlanError(f"{settings.query_frontend_image} (Clipper's query frontend) has no binary query "
                            "path: pass --transport rest, or --query_frontend_image clipper-bench/frontend")
        try:
            client = docker_client_or_error()
        except ClipperException as exc:
            raise PlanError(f"--engine docker: {exc.msg if hasattr(exc, 'msg') else exc}") from None
        import docker

        needed = [model_image(settings.model_name)] + ([settings.query_frontend_image] if bench_frontend else [])
        for image in needed:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                raise PlanError(f"--engine docker: no image {image} here: build it with "
                                f"bin/build_docker_images.sh {settings.model_name}") from None

    def _manager(self, places: list[Placement], log_dir: Path, container_args: list[str],
                 frontend_cpus: tuple[int, ...], ports: tuple[int, int, int, int]) -> ContainerManager:
        from .manager import DockerEngineManager

        s = self.settings
        query, admin, rpc, binary = ports
        return DockerEngineManager(
            placements=places, frontend_cpus=frontend_cpus, log_dir=log_dir, query_port=query, admin_port=admin,
            rpc_port=rpc, binary_port=binary, host_network=s.docker_host_network,
            query_frontend_image=s.query_frontend_image, mgmt_frontend_image=s.mgmt_frontend_image,
            container_args=container_args, batches_in_flight=s.batches_in_flight,
            replica_timeout_s=s.replica_timeout_s, start_timeout_s=s.replica_start_timeout_s,
        )

