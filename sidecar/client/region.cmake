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
