# Area "directory_sync" of the integrations service: its sources (owned by that area).
target_sources(integrations_lib PRIVATE ${CMAKE_CURRENT_LIST_DIR}/directory_sync_module.cc)
