# Source this file (bash) to use the set-up environment: `source scripts/env.sh`.
# It activates .venv, tells ament/CMake where the ROS wheels live, sets the library path the
# wheels need (so Python is not re-executed on every start), and overlays the colcon
# install space. With a system ROS 2 install, source /opt/ros/<distro>/setup.bash and
# install/setup.bash instead.

_smolvla_ros_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# .venv links to the venv in the cache (see setup.sh); use its real path, as the build did.
_smolvla_ros_venv="$(readlink -f "$_smolvla_ros_root/.venv")"

if [ ! -x "$_smolvla_ros_venv/bin/python" ]; then
  echo "smolvla_ros: $_smolvla_ros_venv is missing; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi

# shellcheck source=/dev/null
VIRTUAL_ENV_DISABLE_PROMPT=${VIRTUAL_ENV_DISABLE_PROMPT:-1} source "$_smolvla_ros_venv/bin/activate"

# The ROS wheels install share/ and lib/ under the venv prefix.
export AMENT_PREFIX_PATH="$_smolvla_ros_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_smolvla_ros_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export ROS_VERSION=2 ROS_PYTHON_VERSION=3 ROS_DISTRO="${ROS_DISTRO:-jazzy}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"

# ros-wheels-bootstrapper re-executes every Python start until LD_LIBRARY_PATH holds the
# wheels' libraries and _ROS_WHEELS_BOOTSTRAP_COMPLETE is set. Set both once, together;
# subprocesses inherit them.
if [ -z "${_ROS_WHEELS_BOOTSTRAP_COMPLETE:-}" ]; then
  LD_LIBRARY_PATH="$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$_smolvla_ros_venv/bin/python" -c \
    'from ros_wheels_bootstrapper import get_ros_paths; print(get_ros_paths())')"
  export LD_LIBRARY_PATH _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
fi

if [ -f "$_smolvla_ros_root/install/local_setup.bash" ]; then
  # colcon's scripts read unset variables; relax `set -u` while they run, if it is on.
  case $- in *u*) _smolvla_ros_nounset=1; set +u ;; *) _smolvla_ros_nounset= ;; esac
  # shellcheck source=/dev/null
  source "$_smolvla_ros_root/install/local_setup.bash"
  [ -z "$_smolvla_ros_nounset" ] || set -u
  unset _smolvla_ros_nounset
fi
unset _smolvla_ros_root _smolvla_ros_venv
