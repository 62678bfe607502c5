"""mnistcli: train and evaluate the classic Keras MNIST classifiers from composed Hydra configs."""

import logging
import time

__version__ = "0.1.0"
# When the `mnist` command started (its first import): training runs measure their start-up
# (process start to the end of the first training step) from here.
PROCESS_STARTED = time.time()
# A training run's story (its set-up, one line per epoch, how it ended, or the error that stopped
# it): conf/train.yaml sends this logger to the run's train.log only, the console showing the same.
RUN_LOG = logging.getLogger("mnistcli.run")
