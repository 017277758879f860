# Area "export" of the integrations service: its sources (owned by that area).
# delegation.cc: delegated tokens for calls made on behalf of a person (used by
# the Slack and directory-sync areas too).
target_sources(integrations_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/export_module.cc
  ${CMAKE_CURRENT_LIST_DIR}/export_rules.cc
  ${CMAKE_CURRENT_LIST_DIR}/export_audit.cc
  ${CMAKE_CURRENT_LIST_DIR}/export_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/delegation.cc
)
