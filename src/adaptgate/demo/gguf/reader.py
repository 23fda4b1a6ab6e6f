"""Opening a llama GGUF: the memory-mapped reader plus its validated metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.demo.gguf.locate import require_gguf_library
from adaptgate.demo.gguf.metadata import GgufVocab, LlamaHParams, read_hparams, read_vocab
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound

if TYPE_CHECKING:
    from gguf import GGUFReader


@dataclass(frozen=True)
class LlamaGguf:
    path: Path
    reader: GGUFReader
    hparams: LlamaHParams
    vocab: GgufVocab

    @property
    def tied_embeddings(self) -> bool:
        """llama.cpp writes no ``output.weight`` when the head shares the embedding."""
        return all(t.name != "output.weight" for t in self.reader.tensors)


def open_llama_gguf(path: Path) -> LlamaGguf:
    """Reads the header (tensor data stays memory-mapped); a file that is not a plain llama
    GGUF raises one line."""
    require_gguf_library()
    from gguf import GGUFReader

    if not path.is_file():
        raise CheckpointNotFound(f"no GGUF file at {path}")
    try:
        reader = GGUFReader(path, "r")
    except (ValueError, OSError, KeyError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointFormatError(f"{path.name} is not a readable GGUF file: {first}") from None
    vocab = read_vocab(reader)
    return LlamaGguf(path, reader, read_hparams(reader, vocab), vocab)
