# The app client libraries (issue 3): the control block access shared with the agent, the C++
# client (client.h) and its C ABI (modelswap.h). Included from sidecar/CMakeLists.txt.
# The Python module (python/modelswap/) needs no build.
add_library(modelswap_client STATIC
  ${CMAKE_CURRENT_LIST_DIR}/control_block_access.cc
  ${CMAKE_CURRENT_LIST_DIR}/reader_slot.cc
  ${CMAKE_CURRENT_LIST_DIR}/client.cc
  ${CMAKE_CURRENT_LIST_DIR}/modelswap_c.cc)
target_link_libraries(modelswap_client PUBLIC modelswap_model modelswap_common Threads::Threads)
