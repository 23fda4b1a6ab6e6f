"""The container command for the chosen release's image (seed 002's `docker run`, checked
against the vllm-ascend v0.18.0 tutorials): the NPU device nodes of the cards used, the driver,
firmware, npu-smi and hccn.conf mounts, shared memory, the model directory, the port."""

from __future__ import annotations

import re

from adaptgate.messages import said
from adaptgate.serve.models import ContainerCommand

ASCEND_IMAGE = "quay.io/ascend/vllm-ascend"
CUDA_IMAGE = "vllm/vllm-openai"
SHM_SIZE = "16g"
# The host directory the Ascend container mounts at the same path (pip and model caches): files
# the host puts here, such as the adaptgate plugin wheel, are visible inside the container.
CACHE_DIR = "/root/.cache"
# Host paths every vllm-ascend container needs (read-only where the runtime only reads).
ASCEND_MOUNTS: tuple[tuple[str, str], ...] = (
    ("/usr/local/dcmi", "ro"),
    ("/usr/local/Ascend/driver", "ro"),
    ("/usr/local/Ascend/firmware", "ro"),
    ("/usr/local/bin/npu-smi", "ro"),
    ("/etc/ascend_install.info", "ro"),
    ("/etc/hccn.conf", "ro"),
)
ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")


def image_tag(release: str) -> str:
    tag = release if release.startswith("v") else f"v{release}"
    return re.sub(r"[^A-Za-z0-9_.-]", "", tag)


def default_image(target: str, release: str) -> str:
    if target.startswith("ascend"):
        suffix = "-a3" if target == "ascend-a3" else ""
        return f"{ASCEND_IMAGE}:{image_tag(release)}{suffix}"
    return f"{CUDA_IMAGE}:{image_tag(release)}"


def ascend_container(
    *,
    image: str,
    name: str,
    devices: int,
    host_model_dir: str,
    container_model_dir: str,
    port: int,
    cache_dir: str = CACHE_DIR,
) -> ContainerCommand:
    run = ["docker", "run", "-itd", "--name", name, "--net=host", f"--shm-size={SHM_SIZE}"]
    for i in range(devices):
        run += ["--device", f"/dev/davinci{i}"]
    for dev in ASCEND_CONTROL_DEVICES:
        run += ["--device", dev]
    for path, mode in ASCEND_MOUNTS:
        run += ["-v", f"{path}:{path}:{mode}"]
    run += ["-v", f"{cache_dir}:{cache_dir}"]
    run += ["-v", f"{host_model_dir}:{container_model_dir}:ro"]
    run += [image, "bash"]
    notes = [
        said("serve.container_devices", last=devices - 1),
        said("serve.container_driver"),
        said("serve.container_net", port=port),
        said("serve.container_shm", size=SHM_SIZE),
        said("serve.container_unprivileged"),
        said("serve.container_model", path=container_model_dir),
    ]
    return ContainerCommand(
        image=image,
        name=name,
        run=run,
        exec=["docker", "exec", "-it", name, "bash"],
        notes=notes,
    )


def cuda_container(
    *, image: str, name: str, devices: int, host_model_dir: str, container_model_dir: str
) -> ContainerCommand:
    gpus = ",".join(str(i) for i in range(devices))
    run = ["docker", "run", "-itd", "--name", name, "--gpus", f'"device={gpus}"']
    run += ["--ipc=host", "--net=host", "-v", f"{host_model_dir}:{container_model_dir}:ro"]
    run += ["--entrypoint", "bash", image]
    return ContainerCommand(
        image=image,
        name=name,
        run=run,
        exec=["docker", "exec", "-it", name, "bash"],
        notes=[said("serve.container_gpus", gpus=gpus), said("serve.container_ipc")],
    )
