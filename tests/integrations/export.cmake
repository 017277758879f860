# Tests of area "export" of the integrations service (owned by that area).
# The plain rules: periods, page sizes and tokens, the HTTP query, NDJSON.
kudos_test(export_rules_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/export_rules_test.cc
  LIBS integrations_lib)
# End to end over the real binaries: delegated tokens in kudos, the exports,
# the audit read, the HTTP route.
kudos_test(export_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/export_test.cc
  SERVERS integrations_server kudos_server ledger_server)
# Archived kudos (issue 15) through the export: the kudos archiver runs in the
# test with an injected now, hence kudos_lib.
kudos_test(export_archive_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/export_archive_test.cc
  SERVERS integrations_server kudos_server ledger_server
  LIBS kudos_lib)
# The same through the real gateway's passthrough (/v1/export/).
kudos_test(export_gateway_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/export_gateway_test.cc
  SERVERS integrations_server kudos_server ledger_server gateway_server
  LIBS gateway_test_http)
