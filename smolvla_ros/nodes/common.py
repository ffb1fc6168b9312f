"""What every node shell shares: parameter tables, the core's log callback, and main()."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from builtin_interfaces.msg import Time
from rclpy.node import Node
from sensor_msgs.msg import Image


def declare_parameters(node: Node, table: dict[str, tuple[object, str]],
                       dynamic: tuple[str, ...] = ()) -> dict[str, object]:
    """Declare ``{name: (default, description)}`` and return the values in force. Parameters
    named in ``dynamic`` take any type (e.g. a number or a list of numbers)."""
    for name, (default, description) in table.items():
        node.declare_parameter(name, default, ParameterDescriptor(
            description=description, dynamic_typing=name in dynamic))
    return {name: node.get_parameter(name).value for name in table}


def core_logger(node: Node) -> Callable[[str, str], None]:
    """The ``log(level, message)`` callback the ROS-free core takes, on the node's logger."""
    logger = node.get_logger()

    def log(level: str, message: str) -> None:
        # One call site per severity: rclpy refuses a severity change at the same call site.
        if level == "error":
            logger.error(message)
        elif level == "warn":
            logger.warning(message)
        else:
            logger.info(message)
    return log


MAX_TRAJECTORY_POINTS = ("max_trajectory_points", (
    10000, "action_chunk messages with more points are refused before their points are read"))


def rgb_image(rgb, stamp: Time, frame_id: str) -> Image:
    """An (H, W, 3) uint8 RGB array as a sensor_msgs/Image (rgb8), as our cameras publish."""
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3,
                data=rgb.tobytes())
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


_CTRL_C = threading.Event()


def _on_ctrl_c(signum, frame):
    _CTRL_C.set()
    raise KeyboardInterrupt


def install_ctrl_c_handler() -> None:
    """Call before rclpy.init, which chains its own handler to this one.

    A Ctrl-C raises KeyboardInterrupt wherever Python is; when that is inside rclpy's
    conversion of a received message, pybind11 reports it as RuntimeError("Unable to convert
    call argument"), or inside ``deserialize_message`` as TypeError("Unable to convert function
    return value"). Remembering the Ctrl-C first lets ``stopped_by_ctrl_c`` tell that
    error from a real one (rclpy shuts its context down on a thread of its own: too late).
    """
    signal.signal(signal.SIGINT, _on_ctrl_c)


def stopped_by_ctrl_c() -> bool:
    return _CTRL_C.is_set() or not rclpy.ok()


def shut_down() -> None:
    """``rclpy.try_shutdown()``, which a Ctrl-C or SIGTERM can race: rclpy's signal thread
    shuts the context down on its own, and when it does so between try_shutdown's check and
    its call, that call raises RCLError ("rcl_shutdown already called"; a recorder stopped by
    SIGTERM exited 1 on it once in CI). Down either way is down."""
    try:
        rclpy.try_shutdown()
    except RuntimeError:  # RCLError's base
        if rclpy.ok():
            raise


def freeze_startup_objects() -> None:
    """Move every object alive now (torch, transformers, a loaded model: millions) out of the
    collector's reach. Otherwise each full collection walks them all, measured at 0.3 s with
    the policy loaded, and stalls every thread of the process: joint_states, cameras, chunks."""
    gc.collect()
    gc.freeze()


def run(node_class: type[Node], args: list[str] | None = None) -> int:
    """rclpy.init, spin until Ctrl-C or SIGTERM, shut down cleanly. A ValueError from the
    node's constructor (a bad parameter) is one fatal line and exit status 1."""
    install_ctrl_c_handler()
    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        freeze_startup_objects()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (RuntimeError, TypeError):  # see install_ctrl_c_handler
        if not stopped_by_ctrl_c():
            raise
    except ValueError as error:
        rclpy.logging.get_logger(node_class.__name__).fatal(str(error))
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        shut_down()
    return 0
