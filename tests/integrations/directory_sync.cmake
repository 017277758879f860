# Tests of area "directory_sync" of the integrations service (owned by that area).
kudos_test(directory_sync_rules_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/directory_sync_rules_test.cc
  LIBS integrations_lib)
# SCIM over HTTP through the real gateway when it is part of the build.
if(TARGET gateway_server AND TARGET gateway_test_http)
  kudos_test(directory_sync_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/directory_sync_test.cc
    SERVERS integrations_server kudos_server ledger_server gateway_server
    LIBS integrations_lib gateway_test_http)
else()
  kudos_test(directory_sync_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/directory_sync_test.cc
    SERVERS integrations_server kudos_server ledger_server
    LIBS integrations_lib)
endif()
