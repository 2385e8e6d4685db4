"""Personal data (PII) detection and redaction where data leaves the user's control (docs/privacy.md).

Sits just above `config`, so data, tracking, evaluation, monitoring and serving can all use it.
"""

from modelyard.privacy.detectors import Span
from modelyard.privacy.redact import PRIORITY, Redactor, from_config, redactor_for
from modelyard.privacy.scan import scan_frame

__all__ = ["PRIORITY", "Redactor", "Span", "from_config", "redactor_for", "scan_frame"]
