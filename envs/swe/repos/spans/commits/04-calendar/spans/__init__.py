"""spans: half-open intervals over ordered values."""

from spans.calendar import business_days, daterange, is_weekend
from spans.duration import format_duration, parse_duration
from spans.interval import Interval
from spans.ops import gaps, merge, total_length

__all__ = ["Interval", "business_days", "daterange", "format_duration", "gaps", "is_weekend", "merge",
           "parse_duration", "total_length"]
__version__ = "0.1.0"
