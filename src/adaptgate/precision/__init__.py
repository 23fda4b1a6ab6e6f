"""Precision: metrics, thresholds as data, dump comparison with localization, the served check.

- :mod:`~adaptgate.precision.compare` -- ``compare_dumps(a, b)`` -> ``CompareResult``.
- :mod:`~adaptgate.precision.served` -- ``check_served(ServedConfig)`` -> ``ServedResult``.
- :mod:`~adaptgate.precision.gate` -- ``PrecisionGate`` for ``adaptgate run``.
"""
