"""Datasets: canonical table schemas, sources (path, glob, s3://) and format converters."""
