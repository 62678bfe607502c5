"""mnistcli: train and evaluate the classic Keras MNIST classifiers from composed Hydra configs."""

import time

__version__ = "0.1.0"
# When the `mnist` command started (its first import): training runs measure their start-up
# (process start to the end of the first training step) from here.
PROCESS_STARTED = time.time()
