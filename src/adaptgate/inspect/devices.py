"""Built-in device profiles: memory per device, platform, default utilization, KV block size.

Memory is in bytes, counted in binary units (GiB = 2**30) as the device tools report it:
``npu-smi info`` shows HBM in MiB (65536 for a 64 GB 910B), ``nvidia-smi`` shows MiB (81559 for an
H100 80GB). Vendors' "64 GB" / "80 GB" are these GiB-sized capacities, not 10**9 multiples. The
runtime sees slightly less than the capacity (driver and firmware reserve some), which the planner
leaves to the utilization margin.

Atlas A3 (Ascend 910C): one 910C package has two dies with 64 GB HBM each (128 GB per package).
vllm-ascend and npu-smi present every die as one device (16 on an Atlas 800 A3 with 8 packages),
so the ``a3`` profile is one die, 64 GiB, and ``--devices`` counts dies.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from adaptgate.errors import UsageError
from adaptgate.registry import Registry
from adaptgate.results import HostFacts

GiB = 1 << 30
MiB = 1 << 20
Platform = Literal["ascend-a2", "ascend-a3", "ascend-a5", "cuda", "cpu"]


class DeviceProfile(BaseModel):
    id: str
    name: str
    platform: Platform
    memory_bytes: int = Field(description="memory of one device, bytes (binary units)")
    memory_note: str
    default_utilization: float = Field(description="vLLM --gpu-memory-utilization default")
    kv_block_size: int = Field(description="default KV-cache block size in tokens")
    compute_capability: float | None = None

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB


DEVICES: Registry[DeviceProfile] = Registry("device profile")


def _add(**kw: object) -> None:
    profile = DeviceProfile.model_validate(kw)
    DEVICES.add(profile.id, profile)


_ASCEND = {"default_utilization": 0.9, "kv_block_size": 128}
_CUDA = {"platform": "cuda", "default_utilization": 0.9, "kv_block_size": 16}
for _id, _gib in (("910b1", 64), ("910b2", 64), ("910b3", 64), ("910b4", 32)):
    _add(
        id=_id,
        name=f"Ascend {_id.upper()} (Atlas 800 A2)",
        platform="ascend-a2",
        memory_bytes=_gib * GiB,
        memory_note=f"{_gib} GB HBM = {_gib * 1024} MiB in npu-smi",
        **_ASCEND,
    )
_add(
    id="a3",
    name="Atlas A3 / Ascend 910C, one die",
    platform="ascend-a3",
    memory_bytes=64 * GiB,
    memory_note="64 GB HBM per die (128 GB per 910C package of 2 dies); one device = one die",
    **_ASCEND,
)
_add(
    id="h100",
    name="NVIDIA H100 80GB",
    memory_bytes=81559 * MiB,
    memory_note="80 GB HBM3; 81559 MiB in nvidia-smi",
    compute_capability=9.0,
    **_CUDA,
)
_add(
    id="h200",
    name="NVIDIA H200 141GB",
    memory_bytes=143771 * MiB,
    memory_note="141 GB HBM3e; 143771 MiB in nvidia-smi",
    compute_capability=9.0,
    **_CUDA,
)
_add(
    id="a100",
    name="NVIDIA A100 80GB",
    memory_bytes=81920 * MiB,
    memory_note="80 GB HBM2e; 81920 MiB in nvidia-smi",
    compute_capability=8.0,
    **_CUDA,
)
_add(
    id="cpu",
    name="CPU (host RAM)",
    platform="cpu",
    memory_bytes=0,
    memory_note="host RAM: --cpu-memory-gib, else MemTotal of this machine",
    default_utilization=0.9,
    kv_block_size=16,
)


def device_profile(device_id: str, cpu_memory_gib: float | None = None) -> DeviceProfile:
    """The profile by id; ``cpu`` gets the given RAM or this machine's MemTotal."""
    profile = DEVICES.get(device_id.lower())
    if profile.platform != "cpu":
        return profile
    if cpu_memory_gib is not None:
        memory = int(cpu_memory_gib * GiB)
        note = f"{cpu_memory_gib:g} GiB given by --cpu-memory-gib"
    else:
        detected = HostFacts.detect().memory_bytes
        if not detected:
            raise UsageError("cannot read this machine's RAM", fix="pass --cpu-memory-gib")
        memory, note = detected, f"{detected / GiB:.1f} GiB MemTotal of this machine"
    return profile.model_copy(update={"memory_bytes": memory, "memory_note": note})


def list_devices() -> list[DeviceProfile]:
    return [profile for _, profile in DEVICES.items()]
