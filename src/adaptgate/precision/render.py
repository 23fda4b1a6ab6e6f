"""Human rendering of compare and served-check results (tables in the seed reports' style)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from adaptgate.precision.models import CompareResult, ServedResult


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _verdict(verdict: str) -> str:
    return f"[bold green]{verdict}[/]" if verdict == "PASS" else f"[bold red]{verdict}[/]"


def render_compare(result: CompareResult, console: Console) -> None:
    from rich.table import Table

    console.print(
        f"reference {result.reference.path} ({result.reference.quantization}, "
        f"{result.reference.device} {result.reference.dtype})\n"
        f"candidate {result.candidate.path} ({result.candidate.quantization}, "
        f"{result.candidate.device} {result.candidate.dtype})\n"
        f"thresholds: {result.thresholds.profile} ({result.thresholds.file}), "
        f"{result.prompts} prompts"
    )
    failing = {c.subject for c in result.checks if not c.passed}
    # the JSON holds every metric; the table keeps what fits a terminal
    table = Table("tensor", "max abs", "mean abs", "rel L2", "cosine", "<1‰", "KL", "top-1")
    for row in result.tensors:
        m, lg = row.metrics, row.logits
        subject = f"layer {row.layer}" if row.layer is not None else row.name
        name = f"[red]{row.name}[/]" if subject in failing else row.name
        table.add_row(
            name, _s(m.max_abs_err), _s(m.mean_abs_err), _s(m.rel_l2), f"{m.cosine:.6f}",
            f"{m.within_1e3:.1%}", f"{lg.kl_mean:.1e}" if lg else "",
            f"{lg.top1_agreement:.1%}" if lg else "",
        )  # fmt: skip
    console.print(table)
    if result.generation is not None:
        g = result.generation
        console.print(
            f"greedy exact match {g.exact_match_rate:.1%} ({g.matched_tokens}/{g.tokens} tokens), "
            f"earliest divergence at {g.earliest_divergence}"
        )
    loc = result.localization
    if loc.name is not None:
        console.print(f"localized: [bold]{loc.module or loc.name}[/] -- {loc.criterion}")
    if result.plot:
        console.print(f"error vs depth: {result.plot}")
    console.print(f"{_verdict(result.verdict)}: {result.reason.text}")


def render_served(result: ServedResult, console: Console) -> None:
    from rich.table import Table

    m = result.metrics
    console.print(
        f"{result.url} model {result.model!r} vs {result.reference.path}, top-{result.top_k}"
    )
    table = Table("prompt", "ref", "server", "1st diff", "top-k", "|Δ lp|", "top-k KL")
    for r in result.prompts:
        topk = (
            ""
            if r.reference_token_in_server_topk is None
            else (
                "yes"
                if r.reference_token_in_server_topk and r.server_token_in_reference_topk
                else "no"
            )
        )
        table.add_row(
            r.id, str(r.reference_tokens), str(r.server_tokens),
            "-" if r.first_mismatch is None else str(r.first_mismatch), topk,
            _s(r.logprob_abs_diff_mean), "-" if r.topk_kl_mean is None else f"{r.topk_kl_mean:.1e}",
        )  # fmt: skip
    console.print(table)
    prompt_lp = (
        f", prompt |Δ logprob| mean {_g(m.prompt_logprob_abs_diff_mean)}"
        if m.prompt_logprobs_available
        else ", prompt logprobs not offered by the server"
    )
    console.print(
        f"exact match {m.exact_match_rate:.1%} ({m.matched_tokens}/{m.tokens}), "
        f"first mismatch within top-k {m.first_mismatch_in_topk:.0%}{prompt_lp}"
    )
    if m.served_in_reference_topk is not None:
        how = "teacher-forced on the server's text" if m.teacher_forced else "same-context prefix"
        console.print(
            f"{m.scored_positions} positions scored ({how}): served token in the reference's "
            f"top-{result.top_k} {m.served_in_reference_topk:.1%}, worst rank {m.served_rank_max}"
        )
    console.print(f"{_verdict(result.verdict)}: {result.reason.text}")
