# Tests of area "webhooks" of the integrations service (owned by that area).
pkg_check_modules(WEBHOOKS_TEST_EVENT REQUIRED IMPORTED_TARGET libevent)
find_package(OpenSSL REQUIRED)
kudos_test(webhooks_unit_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhooks_unit_test.cc ${CMAKE_CURRENT_LIST_DIR}/webhooks_receiver.cc
  LIBS integrations_lib PkgConfig::WEBHOOKS_TEST_EVENT OpenSSL::Crypto)
kudos_test(webhooks_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhooks_test.cc ${CMAKE_CURRENT_LIST_DIR}/webhooks_receiver.cc
  LIBS PkgConfig::WEBHOOKS_TEST_EVENT OpenSSL::Crypto gateway_test_http
  SERVERS integrations_server kudos_server ledger_server leaderboard_server gateway_server)
kudos_test(webhooks_store_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhooks_store_test.cc
  LIBS integrations_lib)
# Issue 14: the webhooks scripts during a slot migration of the org's slot on a
# real Redis Cluster (every key in KEYS: the source answers a script whose keys
# it all holds, TRYAGAIN otherwise; never the empty target).
kudos_test(webhooks_migration_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/webhooks_migration_test.cc
  LIBS integrations_lib)
