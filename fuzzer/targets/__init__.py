"""Pipelines: sources, converters and backends, each stage run inside an isolated worker."""
