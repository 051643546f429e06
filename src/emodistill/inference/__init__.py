"""Running a trained speech-only model: EmoDistill, batching, segments, streams, ONNX."""
