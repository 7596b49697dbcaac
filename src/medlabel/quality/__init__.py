"""Quality measures: overlap metrics and the simulated-annotator benchmark of engines."""
