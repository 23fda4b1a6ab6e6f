"""The adaptation report, rendered from a run's run.json (never from anything else)."""
