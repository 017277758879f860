# embed_lua(<out_var> <name> <file.lua>): turns a Lua script into a C++
# header defining `inline constexpr char <name>[]`, so binaries carry their
# scripts and need no path at run time. Editing the .lua re-runs CMake.
function(embed_lua out_var name lua_file)
  get_filename_component(abs "${lua_file}" ABSOLUTE)
  file(READ "${abs}" body)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${abs}")
  set(header "${CMAKE_CURRENT_BINARY_DIR}/lua/${name}.h")
  file(WRITE "${header}.tmp"
    "// Generated from ${lua_file}; edit that file.\n#pragma once\n"
    "inline constexpr char ${name}[] = R\"lua_source(${body})lua_source\";\n")
  file(COPY_FILE "${header}.tmp" "${header}" ONLY_IF_DIFFERENT)
  set(${out_var} "${CMAKE_CURRENT_BINARY_DIR}/lua" PARENT_SCOPE)
endfunction()
