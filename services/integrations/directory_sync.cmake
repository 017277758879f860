# Area "directory_sync" of the integrations service: SCIM 2.0 and the CSV
# import (owned by that area).
embed_lua(DIRECTORY_SYNC_LUA_DIR kDirectorySyncScimPutLua
          ${CMAKE_CURRENT_LIST_DIR}/scripts/directory_sync_scim_put.lua)
embed_lua(DIRECTORY_SYNC_LUA_DIR kDirectorySyncScimDeleteLua
          ${CMAKE_CURRENT_LIST_DIR}/scripts/directory_sync_scim_delete.lua)
embed_lua(DIRECTORY_SYNC_LUA_DIR kDirectorySyncTokenCreateLua
          ${CMAKE_CURRENT_LIST_DIR}/scripts/directory_sync_token_create.lua)
target_sources(integrations_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_module.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_directory.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_scim_store.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_scim_json.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_scim.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_csv.cc
  ${CMAKE_CURRENT_LIST_DIR}/directory_sync_service.cc
)
target_include_directories(integrations_lib PRIVATE ${DIRECTORY_SYNC_LUA_DIR}/..)
