"""Gradient health: on-device statistics, health events, the run's verdict, gradient-flow plots."""

from src.monitor.gradient_health import GradientHealthMonitor

__all__ = ["GradientHealthMonitor"]
