"""Lightning callbacks: the gradient-health monitor and its parts (statistics, events, plots)."""

from src.callbacks.gradient_health import GradientHealthMonitor

__all__ = ["GradientHealthMonitor"]
