# Awards, nominations and program budgets (issue 18, parts 2 and 4).
embed_lua(PROGRAMS_LUA_DIR kProgramsWriteLua ${CMAKE_CURRENT_LIST_DIR}/scripts/programs_write.lua)
target_sources(programs_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/programs_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/budget_rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/budget_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/awards_rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/awards_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/awards_payments.cc
  ${CMAKE_CURRENT_LIST_DIR}/awards_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/awards_module.cc
)
target_include_directories(programs_lib PRIVATE ${PROGRAMS_LUA_DIR})
