# Area "slack" of the integrations service: its sources (owned by that area).
target_sources(integrations_lib PRIVATE ${CMAKE_CURRENT_LIST_DIR}/slack_module.cc)
