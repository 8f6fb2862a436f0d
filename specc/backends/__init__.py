"""Backends: what a checked network becomes (Python source, a torch module, an ONNX file)."""
