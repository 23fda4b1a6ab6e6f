"""lm-evaluation-harness against an OpenAI-compatible endpoint, offline.

lm-eval's ``local-completions`` model (``local-chat-completions`` when the server's chat template
is applied) sends each request to /v1/completions (/v1/chat/completions) as text: no tokenizer is
loaded, so nothing is fetched. Datasets and the Hub are put offline before lm-eval imports them;
a registry task whose data is not in the local cache is refused up front, naming the task.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from adaptgate.errors import AdaptgateError, TaskDataMissing, UnknownTask

OFFLINE = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def go_offline(data_dir: Path | None) -> None:
    """No network for datasets or the Hub from here on; ``data_dir``: the Hugging Face cache
    (HF_HOME layout: hub/, datasets/) to read task data from. Set in the environment for the
    libraries not imported yet, and in their config for those already imported."""
    for name in OFFLINE:
        os.environ[name] = "1"
    if data_dir is not None:
        os.environ["HF_HOME"] = str(data_dir)
        os.environ["HF_HUB_CACHE"] = str(data_dir / "hub")
        os.environ["HF_DATASETS_CACHE"] = str(data_dir / "datasets")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
        if data_dir is not None:
            constants.HF_HUB_CACHE = str(data_dir / "hub")
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
        datasets.config.HF_DATASETS_OFFLINE = True
        if data_dir is not None:
            datasets.config.HF_DATASETS_CACHE = data_dir / "datasets"


def task_manager(include_path: Path) -> Any:
    import datasets
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)  # its INFO lines would drown ours
    datasets.disable_progress_bars()  # a bar per split loaded; lm-eval's request bar stays
    return TaskManager(include_path=str(include_path))


def check_tasks(manager: Any, names: list[str], data_dir: Path | None) -> None:
    """Every task known and its data readable without the network, else a one-line error."""
    where = f"in {data_dir}" if data_dir else "in the local datasets cache"
    for name in names:
        if name not in manager.all_tasks:
            raise UnknownTask(
                f"lm-eval has no task {name!r}",
                fix="name a task of `lm_eval --tasks list`, or leave --task out for adaptgate's "
                "built-in task",
            )
        try:
            manager.load(name)
        except (OSError, ValueError) as exc:  # offline: ConnectionError; not cached: not found
            raise TaskDataMissing(
                f"task {name}'s data is not {where} and the network is never used "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                fix=f'on a machine with network run `HF_HOME=DIR python -c "import lm_eval.tasks '
                f"as t; t.TaskManager().load('{name}')\"`, copy DIR here and pass --data-dir DIR",
            ) from None


def evaluate(
    manager: Any,
    names: list[str],
    *,
    url: str,
    model: str,
    chat: bool,
    limit: int | None,
    concurrency: int,
    timeout_s: float,
    api_key_env: str | None,
) -> dict[str, Any]:
    """One lm-eval run: ``simple_evaluate``'s result (``results``, ``n-samples``, ``samples``)."""
    import lm_eval

    endpoint = "chat/completions" if chat else "completions"
    model_args: dict[str, Any] = {
        "base_url": f"{url.rstrip('/')}/v1/{endpoint}",
        "model": model,
        "tokenizer_backend": None,  # text requests: no tokenizer to download
        "tokenized_requests": False,
        "num_concurrent": concurrency,
        "max_retries": 1,
        "timeout": int(timeout_s),
    }
    key = os.environ.get(api_key_env) if api_key_env else None
    if key:  # lm-eval reads OPENAI_API_KEY itself; --api-key-env may name another variable
        model_args["header"] = {"Authorization": f"Bearer {key}"}
    result: dict[str, Any] | None = lm_eval.simple_evaluate(
        model="local-chat-completions" if chat else "local-completions",
        model_args=model_args,
        tasks=names,
        task_manager=manager,
        apply_chat_template=chat,
        limit=limit,
        log_samples=True,  # the items' hashes identify the data
        bootstrap_iters=0,  # the interval is Wilson's, computed here
        verbosity="WARNING",
    )
    if result is None:  # only on a non-zero rank of a distributed run, never here
        raise RuntimeError("lm-eval returned no result")
    return result


def data_hash(samples: list[dict[str, Any]]) -> str:
    """sha256 over the items' own hashes (lm-eval's doc_hash) in item order."""
    ordered = sorted(samples, key=lambda s: s["doc_id"])
    return hashlib.sha256("".join(s["doc_hash"] for s in ordered).encode()).hexdigest()


def primary_metric(task_results: dict[str, Any]) -> tuple[str, float]:
    """The task's first metric (lm-eval keeps the task's metric_list order), e.g.
    ``exact_match,strict-match`` for GSM8K."""
    for key, value in task_results.items():
        if "," in key and "_stderr" not in key and isinstance(value, int | float):
            return key, float(value)
    raise AdaptgateError(
        f"lm-eval reported no metric ({', '.join(task_results)})",
        fix="use a task with an accuracy-like metric (acc, exact_match)",
    )
