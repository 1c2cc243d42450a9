"""vidfit: train and run video models on long videos within the memory of one GPU."""
