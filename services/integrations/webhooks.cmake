# Area "webhooks" of the integrations service: its sources (owned by that area).
find_package(PkgConfig REQUIRED)
pkg_check_modules(WEBHOOKS_CURL REQUIRED IMPORTED_TARGET libcurl)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksLibLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_lib.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksPutSubscriptionLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_put_subscription.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksDeleteSubscriptionLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_delete_subscription.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksRotateSecretLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_rotate_secret.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksEnqueueLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_enqueue.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksClaimLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_claim.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksFinishLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_finish.lua)
embed_lua(WEBHOOKS_LUA_DIR kWebhooksRedeliverLua ${CMAKE_CURRENT_LIST_DIR}/scripts/webhooks_redeliver.lua)
target_sources(integrations_lib PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_module.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_dispatcher.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_events.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_http.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_signature.cc
  ${CMAKE_CURRENT_LIST_DIR}/webhooks_store.cc
)
target_include_directories(integrations_lib PRIVATE ${WEBHOOKS_LUA_DIR})
target_link_libraries(integrations_lib PUBLIC PkgConfig::WEBHOOKS_CURL)
