# The snapshot host (issue 6): persists committed states of app regions and restores them at pod
# start. Used by the agent (`agent --snapshot-dir DIR --snapshot-interval MS`). Included from
# sidecar/CMakeLists.txt after client/region.cmake: include(snapshot/snapshot.cmake)
find_package(prometheus-cpp REQUIRED)
add_library(modelswap_snapshot STATIC
  ${CMAKE_CURRENT_LIST_DIR}/snapshot_format.cc
  ${CMAKE_CURRENT_LIST_DIR}/region_view.cc
  ${CMAKE_CURRENT_LIST_DIR}/snapshot_writer.cc
  ${CMAKE_CURRENT_LIST_DIR}/chunk_pipeline.cc
  ${CMAKE_CURRENT_LIST_DIR}/region_filler.cc
  ${CMAKE_CURRENT_LIST_DIR}/snapshot_restore.cc
  ${CMAKE_CURRENT_LIST_DIR}/snapshot_stats.cc
  ${CMAKE_CURRENT_LIST_DIR}/snapshot_host.cc)
target_link_libraries(modelswap_snapshot PUBLIC modelswap_region modelswap_common
  nlohmann_json::nlohmann_json prometheus-cpp::core)
