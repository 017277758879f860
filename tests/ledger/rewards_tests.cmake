# Issue 18: the rewards catalog (ledger.v1.RewardsService, hosted by
# ledger_server) over a real redis-server and real gRPC: catalog access
# rules, redeem/fulfil/decline/approve flows, stock under concurrent
# redemptions, idempotent retries, VerifyLedger and the liability report.
kudos_test(ledger_rewards_test
  SOURCES ledger_rewards_test.cc ledger_test_util.cc
  SERVERS ledger_server
  LIBS ledger_lib)
