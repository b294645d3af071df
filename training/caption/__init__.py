"""Image captioning (Show, Attend and Tell): data, vocabulary, network, training, ONNX export, evaluation."""
