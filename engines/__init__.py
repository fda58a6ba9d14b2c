"""Trident inference engines (ONNX Runtime, TensorRT, torch) behind one protocol."""
