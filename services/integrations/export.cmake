# Area "export" of the integrations service: its sources (owned by that area).
target_sources(integrations_lib PRIVATE ${CMAKE_CURRENT_LIST_DIR}/export_module.cc)
