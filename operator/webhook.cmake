# modelswap_webhook: the sidecar-injection webhook (pure AdmissionReview function, injection
# settings, native-sidecar detection, certificates, HTTPS server). Self-contained: it needs only
# modelswap_common, nlohmann_json, cpprestsdk and OpenSSL, not the rest of the operator.
# Include it from operator/CMakeLists.txt (include(${CMAKE_CURRENT_SOURCE_DIR}/webhook.cmake))
# and link modelswap_webhook into modelswap_operator_lib or modelswap-operator.
if(TARGET modelswap_webhook)
  return()
endif()
find_package(cpprestsdk REQUIRED)
find_package(OpenSSL REQUIRED)

set(MODELSWAP_WEBHOOK_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(modelswap_webhook STATIC
  ${MODELSWAP_WEBHOOK_DIR}/webhook.cc
  ${MODELSWAP_WEBHOOK_DIR}/webhook_config.cc
  ${MODELSWAP_WEBHOOK_DIR}/sidecar_support.cc
  ${MODELSWAP_WEBHOOK_DIR}/certs.cc
  ${MODELSWAP_WEBHOOK_DIR}/webhook_server.cc
)
target_include_directories(modelswap_webhook PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(modelswap_webhook PUBLIC
  modelswap_common spdlog::spdlog nlohmann_json::nlohmann_json cpprestsdk::cpprest OpenSSL::SSL OpenSSL::Crypto
  Threads::Threads)
