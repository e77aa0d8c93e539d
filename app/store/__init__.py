"""Models on disk and in memory: the checkpoint format, the registry of loaded models, and the
training run that writes a checkpoint. Built on app.lm and app.data; knows nothing of serving."""
