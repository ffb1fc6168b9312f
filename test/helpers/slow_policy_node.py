"""policy_node whose checkpoint takes SLOW_LOAD_S seconds longer to load, as a full-size model
does on a CPU (14 s here): for tests of what happens while it loads."""

import os
import sys
import time

from smolvla_ros.nodes import policy_node
from smolvla_ros.policy.runtime import PolicyRuntime

_load = PolicyRuntime.__init__


def _slow_load(self, config):
    time.sleep(float(os.environ["SLOW_LOAD_S"]))
    _load(self, config)


PolicyRuntime.__init__ = _slow_load
sys.exit(policy_node.main(sys.argv))
