"""The container command for the chosen release's image (seed 002's `docker run`, checked
against the vllm-ascend v0.18.0 tutorials): the NPU device nodes of the cards used, the driver,
firmware, npu-smi and hccn.conf mounts, shared memory, the model directory, the port."""

from __future__ import annotations

import re

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
        f"/dev/davinci0..{devices - 1}: the NPUs this plan uses (one per rank on this node); "
        "davinci_manager, devmm_svm and hisi_hdc are the driver's control nodes every container "
        "needs",
        "driver, firmware, npu-smi, dcmi, hccn.conf and ascend_install.info are mounted "
        "read-only from the host: the image carries CANN but not the kernel driver",
        f"--net=host: the API port {port} and HCCL/DP ports are the host's (so no -p mapping, "
        "which host networking ignores)",
        f"--shm-size={SHM_SIZE}: worker processes exchange tensors and message queues through "
        "/dev/shm; docker's 64 MB default is too small",
        "no --privileged: the device nodes above are all vllm-ascend needs",
        f"the model is mounted read-only at {container_model_dir}",
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
        notes=[
            f"--gpus device={gpus}: the GPUs this plan uses",
            "--ipc=host: NCCL and the workers share memory through the host IPC namespace",
        ],
    )
