# Tests of area "slack" of the integrations service (owned by that area).
# The pure parts and the Redis state, against the library.
kudos_test(slack_rules_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/slack_rules_test.cc
           LIBS integrations_lib)
# The slash command end to end: gateway -> integrations -> kudos -> ledger.
kudos_test(slack_command_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/slack_command_test.cc
           LIBS integrations_lib gateway_test_http
           SERVERS integrations_server kudos_server ledger_server gateway_server)
