"""specc: convolutional networks written as text, checked, trained and shipped.

The pipeline, one module a stage: parse -> expand -> check -> backends
(torch, python_source, onnx) -> runners (train, evaluate, export, predict, bench).
This package only composes them; torch is imported only by the verbs that need it.
"""

from .api import Net, load, loads
from .check import Report, Row
from .errors import SpeccError

__version__ = "0.1.0"
__all__ = ["Net", "Predictor", "Report", "Row", "SpeccError", "export", "load", "loads", "__version__"]


def __getattr__(name: str):
    # Looked up on first use, so that `import specc` loads neither torch nor onnxruntime.
    if name == "export":
        from .runners.export import export

        return export
    if name == "Predictor":
        from .runners.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'specc' has no attribute {name!r}")
