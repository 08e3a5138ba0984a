# `cmake --install build [--prefix P] [--component C]`: what app images and hosts get.
#
#   bin/                         modelswap-sidecar, modelswap-operator          (component Runtime)
#   lib/libmodelswap_region.so   the region C ABI alone, ms_region_* exported    (component Runtime)
#   lib/libmodelswap_*.a         client, channel, region and what they link:     (component Development)
#                                volume, msf, common
#   include/modelswap/...        their headers at their repository paths, so
#                                `#include "sidecar/client/model/client.h"` works with
#                                -I P/include/modelswap (one folder: no clash with a system common/)
#   lib/cmake/modelswap/         find_package(modelswap CONFIG): modelswap::client, ::channel,
#                                ::region, ::region_c (and ::volume, ::msf, ::common they link)
#   lib/pkgconfig/               modelswap.pc (C++ static libs), modelswap-region.pc (the .so)
#
# Everything installed is relocatable: the CMake files find the prefix from their own location and
# the .pc files from ${pcfiledir}, so `--prefix` at install time and DESTDIR staging both work.
# Included from the top-level CMakeLists.txt after every target exists; usage is in README.md here.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MODELSWAP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/modelswap)
set(MODELSWAP_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/modelswap)

# --- binaries ---------------------------------------------------------------------------------
install(TARGETS modelswap-sidecar modelswap-operator
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)

# --- libraries --------------------------------------------------------------------------------
# Exported as modelswap::<EXPORT_NAME>. EXPORT_NAME only names the imported copy; the build tree
# keeps its modelswap_* names.
set(_modelswap_exported
  modelswap_common common modelswap_msf msf modelswap_volume volume
  modelswap_client client modelswap_channel channel modelswap_region region
  modelswap_region_c region_c)
set(_modelswap_targets "")
while(_modelswap_exported)
  list(POP_FRONT _modelswap_exported _target _name)
  set_target_properties(${_target} PROPERTIES EXPORT_NAME ${_name})
  list(APPEND _modelswap_targets ${_target})
endwhile()
install(TARGETS ${_modelswap_targets} EXPORT modelswapTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
  # modelswap_common's build-tree include dir is the source root (BUILD_INTERFACE only); this is
  # its installed counterpart, inherited by every target linking it.
  INCLUDES DESTINATION ${MODELSWAP_INSTALL_INCLUDEDIR})

# --- headers ----------------------------------------------------------------------------------
# Every header of the installed libraries, at its repository path, but three: common/http_server.h
# belongs to modelswap_http (not installed), and sidecar/msf/cursor.h and reader_internal.h are
# the decoding helpers inside the reader, verifier and builder (no installed header includes
# them). tests/packaging/
# test_install.py compiles each installed header on its own against the installed tree, so a
# header including one left out here fails there.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/common/
  DESTINATION ${MODELSWAP_INSTALL_INCLUDEDIR}/common COMPONENT Development
  FILES_MATCHING PATTERN "*.h" PATTERN "http_server.h" EXCLUDE)
foreach(_dir sidecar/msf sidecar/volume)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}/
    DESTINATION ${MODELSWAP_INSTALL_INCLUDEDIR}/${_dir} COMPONENT Development
    FILES_MATCHING PATTERN "*.h" PATTERN "cursor.h" EXCLUDE PATTERN "reader_internal.h" EXCLUDE)
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sidecar/client/
  DESTINATION ${MODELSWAP_INSTALL_INCLUDEDIR}/sidecar/client COMPONENT Development
  FILES_MATCHING PATTERN "*.h" PATTERN "python" EXCLUDE)

# --- CMake package ----------------------------------------------------------------------------
install(EXPORT modelswapTargets NAMESPACE modelswap::
  DESTINATION ${MODELSWAP_INSTALL_CMAKEDIR} COMPONENT Development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/modelswapConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/modelswapConfig.cmake
  INSTALL_DESTINATION ${MODELSWAP_INSTALL_CMAKEDIR})
# 0.x: a minor release may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/modelswapConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/modelswapConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/modelswapConfigVersion.cmake
  DESTINATION ${MODELSWAP_INSTALL_CMAKEDIR} COMPONENT Development)

# --- pkg-config -------------------------------------------------------------------------------
# prefix is ${pcfiledir} walked up to the install prefix, so the files stay right wherever the
# tree is installed or copied. An absolute LIBDIR/INCLUDEDIR is used as given.
set(MODELSWAP_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${MODELSWAP_PC_DIR}")
  set(MODELSWAP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _up "/root/${MODELSWAP_PC_DIR}" "/root")
  set(MODELSWAP_PC_PREFIX "\${pcfiledir}/${_up}")
endif()
foreach(_var LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_var}}")
    set(MODELSWAP_PC_${_var} "${CMAKE_INSTALL_${_var}}")
  else()
    set(MODELSWAP_PC_${_var} "\${prefix}/${CMAKE_INSTALL_${_var}}")
  endif()
endforeach()
foreach(_pc modelswap modelswap-region)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${_pc}.pc.in ${PROJECT_BINARY_DIR}/cmake/${_pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/${_pc}.pc
    DESTINATION ${MODELSWAP_PC_DIR} COMPONENT Development)
endforeach()
