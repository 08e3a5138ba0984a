# State regions (issue 6): the app side of `<shm-dir>/regions/<name>.region` (region.h), the file
# handling shared with the snapshot host (region_file.h) and the layout both use (region_layout.h).
# Included from sidecar/CMakeLists.txt: include(client/region.cmake)
add_library(modelswap_region STATIC
  ${CMAKE_CURRENT_LIST_DIR}/region_file.cc
  ${CMAKE_CURRENT_LIST_DIR}/region.cc
  ${CMAKE_CURRENT_LIST_DIR}/modelswap_region.cc)
target_link_libraries(modelswap_region PUBLIC modelswap_common)
# Position-independent so it can also be linked into shared objects (FFI users).
set_target_properties(modelswap_region PROPERTIES POSITION_INDEPENDENT_CODE ON)

# libmodelswap_region.so: the C ABI alone (modelswap_region.h), for FFI users such as the Python
# binding (python/modelswap/region.py, through ctypes). The version script exports ms_region_*
# and nothing else, so the C++ inside (and its spdlog/fmt use) cannot clash with the host's.
add_library(modelswap_region_c SHARED ${CMAKE_CURRENT_LIST_DIR}/modelswap_region.cc)
target_link_libraries(modelswap_region_c PRIVATE modelswap_region)
set_target_properties(modelswap_region_c PROPERTIES OUTPUT_NAME modelswap_region
  LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/modelswap_region.map)
target_link_options(modelswap_region_c PRIVATE
  -Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/modelswap_region.map -Wl,--no-undefined)
