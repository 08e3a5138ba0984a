# The agent (issue 3): loader, control block writer, watcher, reclaimer, HTTP. Included from
# sidecar/CMakeLists.txt after client/client.cmake (it links modelswap_client).
find_package(cpprestsdk REQUIRED)
find_package(prometheus-cpp REQUIRED)
find_package(OpenSSL REQUIRED)  # cpprestsdk's asio listener needs libcrypto at link time

add_library(modelswap_agent STATIC
  ${CMAKE_CURRENT_LIST_DIR}/sigbus_guard.cc
  ${CMAKE_CURRENT_LIST_DIR}/prefault.cc
  ${CMAKE_CURRENT_LIST_DIR}/stager.cc
  ${CMAKE_CURRENT_LIST_DIR}/loader.cc
  ${CMAKE_CURRENT_LIST_DIR}/control_block_writer.cc
  ${CMAKE_CURRENT_LIST_DIR}/watcher.cc
  ${CMAKE_CURRENT_LIST_DIR}/reclaimer.cc
  ${CMAKE_CURRENT_LIST_DIR}/model_agent.cc
  ${CMAKE_CURRENT_LIST_DIR}/status_json.cc
  ${CMAKE_CURRENT_LIST_DIR}/http_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/agent.cc)
target_link_libraries(modelswap_agent PUBLIC modelswap_client modelswap_model modelswap_snapshot
  modelswap_common
  cpprestsdk::cpprest OpenSSL::SSL OpenSSL::Crypto prometheus-cpp::core nlohmann_json::nlohmann_json)

target_sources(modelswap-sidecar PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/agent_commands.cc)
target_link_libraries(modelswap-sidecar PRIVATE modelswap_agent)
target_compile_definitions(modelswap-sidecar PRIVATE MODELSWAP_HAVE_AGENT)

# cpprestsdk's stream buffers trip UBSan's vptr check across the library boundary (the Debian
# build's type info is not the one our objects see); the rest of UBSan stays on for this file.
if(MODELSWAP_SANITIZE)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/http_server.cc
    PROPERTIES COMPILE_OPTIONS "-fno-sanitize=vptr")
endif()
