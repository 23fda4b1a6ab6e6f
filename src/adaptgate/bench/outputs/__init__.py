"""Renderings of a BenchResult: console tables, JSON/JSONL/CSV files, PNG plots."""
