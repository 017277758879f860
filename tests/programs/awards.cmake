# Awards, nominations and program budgets (issue 18, parts 2 and 4): the real
# programs_server and ledger_server over gRPC and a real redis-server
# (awards_test), and the library with an injected clock and crashes at exact
# steps (awards_lib_test).
kudos_test(programs_awards_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/awards_test.cc ${CMAKE_CURRENT_LIST_DIR}/awards_env.cc
  SERVERS ledger_server programs_server)
kudos_test(programs_awards_lib_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/awards_lib_test.cc ${CMAKE_CURRENT_LIST_DIR}/awards_env.cc
  SERVERS ledger_server programs_server
  LIBS programs_lib)
