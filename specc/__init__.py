"""specc: convolutional networks written as text, checked, trained and shipped.

The pipeline, one module a stage: parse -> expand -> check -> backends
(torch, python_source, onnx) -> runners (train, evaluate, predict, bench).
This package only composes them; torch is imported only by the verbs that need it.
"""

from .api import Net, load, loads
from .check import Report, Row
from .errors import SpeccError

__version__ = "0.1.0"
__all__ = ["Net", "Report", "Row", "SpeccError", "load", "loads", "__version__"]
