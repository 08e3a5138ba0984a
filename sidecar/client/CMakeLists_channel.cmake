# Shared-memory channels (issue 6): the C++ API (channel.h), the C ABI (modelswap_channel.h) and
# the layout both share (channel_layout.h). Included from sidecar/CMakeLists.txt:
#   include(client/CMakeLists_channel.cmake)
# The Python end (python/modelswap/channel.py) needs no build.
add_library(modelswap_channel STATIC
  ${CMAKE_CURRENT_LIST_DIR}/channel.cc
  ${CMAKE_CURRENT_LIST_DIR}/channel_open.cc
  ${CMAKE_CURRENT_LIST_DIR}/modelswap_channel.cc)
target_link_libraries(modelswap_channel PUBLIC modelswap_common)
# Position-independent so the C ABI can also be linked into shared objects (FFI users).
set_target_properties(modelswap_channel PROPERTIES POSITION_INDEPENDENT_CODE ON)
