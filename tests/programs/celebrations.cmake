# Automatic celebrations: the rules and the sweep (RunOnce, clock injected)
# against real Redis, kudos (directory) and ledger (payments) over gRPC; then
# the programs_server binary itself (two replicas, a restart, RPC statuses, and
# what the leaderboard makes of a celebration's kudos from the company).
kudos_test(celebrations_test SOURCES celebrations_test.cc LIBS programs_lib
  SERVERS ledger_server kudos_server)
kudos_test(celebrations_server_test SOURCES celebrations_server_test.cc LIBS programs_lib
  SERVERS ledger_server kudos_server programs_server leaderboard_server)
