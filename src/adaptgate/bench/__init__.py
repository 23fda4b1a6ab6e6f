"""The bench gate: a serving benchmark whose numbers can be trusted.

Layout (GuideLLM's shape): ``backends/`` (OpenAI streaming client), ``scheduler/`` (arrival
schedules, the client event loop, worker processes), ``data/`` (workloads), ``metrics`` (every
metric with its definition), ``validity`` (was the run what it claims), ``runner`` (one run),
``sweep`` (sweeps and SLA search), ``outputs/`` (tables, files, plots), ``compare``,
``calibration_server`` (the instrument), ``gate`` (the pipeline adapter).
"""
