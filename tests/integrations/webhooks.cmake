# Tests of area "webhooks" of the integrations service (owned by that area), e.g.
# kudos_test(webhooks_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhooks_test.cc
#            SERVERS integrations_server kudos_server ledger_server)
