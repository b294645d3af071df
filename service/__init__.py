"""modelserve: image classification, sentiment and image captioning over ONNX Runtime."""
