# Tests of area "directory_sync" of the integrations service (owned by that area).
kudos_test(directory_sync_rules_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/directory_sync_rules_test.cc
  LIBS integrations_lib)
kudos_test(directory_sync_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/directory_sync_test.cc
  SERVERS integrations_server kudos_server ledger_server
  LIBS integrations_lib)
