"""spans: half-open intervals over ordered values."""

from spans.interval import Interval

__all__ = ["Interval"]
__version__ = "0.1.0"
