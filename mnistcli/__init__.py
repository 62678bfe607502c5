"""mnistcli: train and evaluate the classic Keras MNIST classifiers from composed Hydra configs."""

__version__ = "0.1.0"
