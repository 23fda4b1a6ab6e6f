"""Task accuracy of a served model through lm-evaluation-harness, judged against a baseline."""

from adaptgate.accuracy.models import AccuracyOptions, AccuracyResult, Verdict
from adaptgate.accuracy.runner import run_accuracy

__all__ = ["AccuracyOptions", "AccuracyResult", "Verdict", "run_accuracy"]
