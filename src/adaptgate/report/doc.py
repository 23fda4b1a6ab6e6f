"""The report as a list of blocks, built once and rendered to Markdown or HTML.

Sections build blocks; they never write Markdown or HTML themselves, so both renderings say the
same thing. Text may carry two inline marks, ``**strong**`` and ```code```, which both
renderers understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str
    tone: Literal["plain", "alert", "note", "ok"] = "plain"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = "bash"


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    """A PNG: ``source`` is a file a gate wrote (embedded as it is), or else ``data`` is a plot
    the report drew, saved next to the Markdown as ``name``."""

    name: str
    caption: str
    data: bytes = b""
    source: Path | None = None

    def read(self) -> bytes:
        return self.source.read_bytes() if self.source is not None else self.data


Block = Heading | Para | Table | Code | Bullets | Image


@dataclass
class Document:
    title: str
    lang: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    @property
    def images(self) -> list[Image]:
        return [b for b in self.blocks if isinstance(b, Image)]
