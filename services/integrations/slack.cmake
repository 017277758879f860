# Area "slack" of the integrations service: the Slack-compatible app (slash
# command, settings, user links). Owned by that area.
find_package(OpenSSL REQUIRED)
embed_lua(SLACK_LUA_DIR kSlackPutUserLua ${CMAKE_CURRENT_LIST_DIR}/scripts/slack_put_user.lua)
embed_lua(SLACK_LUA_DIR kSlackDeleteUserLua ${CMAKE_CURRENT_LIST_DIR}/scripts/slack_delete_user.lua)
target_sources(integrations_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/slack_module.cc
  ${CMAKE_CURRENT_LIST_DIR}/slack_signature.cc
  ${CMAKE_CURRENT_LIST_DIR}/slack_command.cc
  ${CMAKE_CURRENT_LIST_DIR}/slack_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/slack_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/slack_commands.cc
)
target_include_directories(integrations_lib PRIVATE ${SLACK_LUA_DIR}/..)
target_link_libraries(integrations_lib PRIVATE OpenSSL::Crypto)
