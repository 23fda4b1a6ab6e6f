"""The gate pipeline: gates in order into one run directory, recorded in run.json."""
