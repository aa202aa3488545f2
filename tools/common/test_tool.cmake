# pkramfs_test_tool(NAME SOURCE): a test tool of tools/ (pkramfs-difftest, pkramfs-fsx), built
# with the top-level project (its binary lands in the parent's CMAKE_RUNTIME_OUTPUT_DIRECTORY) or
# configured standalone. C++20, warnings are errors, optimised even in Debug trees: the tools
# replay thousands of operations per second.
function(pkramfs_test_tool name source)
  add_executable(${name} ${source})
  target_compile_features(${name} PRIVATE cxx_std_20)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  set_target_properties(${name} PROPERTIES CXX_EXTENSIONS OFF)
  target_compile_options(${name} PRIVATE -Wall -Wextra -Werror $<$<CONFIG:Debug>:-O1>)
endfunction()
