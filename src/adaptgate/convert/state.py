"""Resume state inside ``OUT.partial/.convert/``: the plan, and one marker per finished shard.

A shard is written as ``<file>.incomplete``, fsynced, renamed to ``<file>``, and only then gets
its marker (size, checksum algorithm, every tensor's checksum and statistics). After a kill at
any point a rerun keeps a shard only if its plan hash matches, its marker exists and the file
re-reads to the same checksums; everything else is written again. Since layout and bytes are
functions of the plan, the result is identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pydantic import BaseModel, ValidationError

from adaptgate.convert.io import file_checksum
from adaptgate.convert.layout import shard_header
from adaptgate.convert.models import ConversionPlan, ShardPlan, TensorPlan
from adaptgate.convert.work import TensorStats
from adaptgate.errors import OutputExists
from adaptgate.results import write_text_atomic

STATE_DIR = ".convert"
INCOMPLETE = ".incomplete"


class ShardDone(BaseModel):
    file: str
    size: int
    checksum: str  # algorithm of the tensors' checksums
    tensors: dict[str, TensorStats]


class ConvertState:
    def __init__(self, partial: Path) -> None:
        self.partial = partial
        self.dir = partial / STATE_DIR

    def _fingerprint(self) -> str | None:
        try:
            return json.loads((self.dir / "plan.json").read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def prepare(self, plan: ConversionPlan) -> dict[str, ShardDone]:
        """Makes ``partial`` ready for ``plan``; returns the finished shards that can be kept."""
        fingerprint = plan.fingerprint()
        if self.partial.exists():
            if not self.dir.is_dir():
                raise OutputExists(
                    f"{self.partial} exists but was not written by adaptgate convert",
                    fix="remove it or choose another output directory",
                )
            if self._fingerprint() != fingerprint:
                shutil.rmtree(self.partial)  # another plan: nothing in it can be reused
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.dir / "plan.json",
            json.dumps({"fingerprint": fingerprint, "plan": plan.model_dump(mode="json")}) + "\n",
        )
        for leftover in self.partial.glob(f"*{INCOMPLETE}"):
            leftover.unlink()
        return self._kept(plan)

    def _kept(self, plan: ConversionPlan) -> dict[str, ShardDone]:
        kept: dict[str, ShardDone] = {}
        tensors = plan.by_name()
        for shard in plan.shards:
            marker = self.dir / f"{shard.file}.done.json"
            path = self.partial / shard.file
            try:
                done = ShardDone.model_validate_json(marker.read_text())
            except (OSError, ValidationError):
                path.unlink(missing_ok=True)
                marker.unlink(missing_ok=True)
                continue
            if _verify_shard(path, shard, done, tensors):
                kept[shard.file] = done
            else:
                path.unlink(missing_ok=True)
                marker.unlink(missing_ok=True)
        return kept

    def mark_done(self, done: ShardDone) -> None:
        write_text_atomic(self.dir / f"{done.file}.done.json", done.model_dump_json() + "\n")

    def all_done(self) -> dict[str, ShardDone]:
        out = {}
        for marker in sorted(self.dir.glob("*.done.json")):
            done = ShardDone.model_validate_json(marker.read_text())
            out[done.file] = done
        return out


def _verify_shard(
    path: Path, shard: ShardPlan, done: ShardDone, tensors: dict[str, TensorPlan]
) -> bool:
    """Size, header and every tensor's checksum re-read from disk."""
    from adaptgate.formats.kernels import checksum_algorithm

    if done.checksum != checksum_algorithm():  # written by a build with the other kernel
        return False
    if not path.is_file() or path.stat().st_size != shard.size or done.size != shard.size:
        return False
    if set(done.tensors) != set(shard.tensors):
        return False
    header = shard_header([tensors[n] for n in shard.tensors])
    with path.open("rb") as fh:
        if fh.read(len(header)) != header:
            return False
    for name in shard.tensors:
        begin, end = tensors[name].data_offsets
        found = file_checksum(
            path, shard.header_size + begin, shard.header_size + end, done.checksum
        )
        if found != done.tensors[name].checksum:
            return False
    return True
