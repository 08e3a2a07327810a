"""Where the first NaN came from: a replay of the failing step with every check on (`core.py`)."""

from src.monitor.forensics.core import Forensics, summary_line

__all__ = ["Forensics", "summary_line"]
