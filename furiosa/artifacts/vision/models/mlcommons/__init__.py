"""Networks of the MLPerf Inference reference (mlcommons/inference, vision/classification_and_detection)."""
