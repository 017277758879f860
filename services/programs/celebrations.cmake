# Automatic celebrations: birthdays and work anniversaries (issue 18, part 3).
# Lua scripts are inline in celebrations_store.cc (three short ones).
target_sources(programs_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/celebrations_rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/celebrations_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/celebrations_sweep.cc
  ${CMAKE_CURRENT_LIST_DIR}/celebrations_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/celebrations_module.cc
)
