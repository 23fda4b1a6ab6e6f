"""What counts as an English sentence in a Chinese report (issue 19): script-aware -- code,
URLs, paths, flags and identifiers are taken out, and any remaining run of three or more English
words (two of them lower-case, so a row of names such as "Qwen3 FP8 BF16" is no sentence) is
one. Shared by the fixture runs' test and the end-to-end demo run."""

from __future__ import annotations

import re

CODE_BLOCK = re.compile(r"```.*?```", re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
URL = re.compile(r"https?://\S+|\]\([^)]*\)|</?[A-Za-z][^<>\n]*>")
# paths, key=value, identifiers with _ or -, --flags, dotted names (file.json, 0.18.0)
NAMES = re.compile(r"\S*[/\\_=]\S*|\S*\w-\w\S*|--?\w\S*|\S*\.\w+\S*")
RUN = re.compile(r"(?:[A-Za-z][A-Za-z']*[ ,;:]+){2,}[A-Za-z][A-Za-z']*")


def english_runs(md: str) -> list[str]:
    text = URL.sub(" ", CODE_SPAN.sub(" ", CODE_BLOCK.sub(" ", md)))
    runs = []
    for line in text.splitlines():
        for m in RUN.finditer(NAMES.sub(" | ", line)):
            words = re.findall(r"[A-Za-z][A-Za-z']*", m.group())
            if sum(w.islower() for w in words) >= 2:
                runs.append(m.group().strip())
    return runs
