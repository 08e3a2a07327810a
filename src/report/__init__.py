"""Sweep comparison tables and figures, read from MLflow (`scripts/report.py` is the command line)."""
