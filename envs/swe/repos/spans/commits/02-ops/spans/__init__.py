"""spans: half-open intervals over ordered values."""

from spans.interval import Interval
from spans.ops import gaps, merge, total_length

__all__ = ["Interval", "gaps", "merge", "total_length"]
__version__ = "0.1.0"
