# smolvla_ros_entry_point(<name> <module> <destination>)
# Writes a launcher script that calls <module>.main() with the configured Python
# interpreter and installs it as <destination>/<name>.
function(smolvla_ros_entry_point name module destination)
  set(SMOLVLA_ROS_PYTHON "${Python3_EXECUTABLE}")
  set(SMOLVLA_ROS_MODULE "${module}")
  configure_file(
    "${PROJECT_SOURCE_DIR}/cmake/entry_point.py.in"
    "${CMAKE_CURRENT_BINARY_DIR}/entry_points/${name}"
    @ONLY
    # Executable in the build folder too: --symlink-install links to this file.
    FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
      WORLD_READ WORLD_EXECUTE)
  install(PROGRAMS "${CMAKE_CURRENT_BINARY_DIR}/entry_points/${name}"
    DESTINATION ${destination})
endfunction()
