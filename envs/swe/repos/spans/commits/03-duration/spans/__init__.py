"""spans: half-open intervals over ordered values."""

from spans.duration import format_duration, parse_duration
from spans.interval import Interval
from spans.ops import gaps, merge, total_length

__all__ = ["Interval", "format_duration", "gaps", "merge", "parse_duration", "total_length"]
__version__ = "0.1.0"
