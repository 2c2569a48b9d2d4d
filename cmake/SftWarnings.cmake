# Picky warnings, after ngtcp2's and curl's lists. -Werror when SFT_WERROR.
function(sft_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wformat=2 -Wformat-security -Wshadow -Wvla
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith
    -Wwrite-strings -Wundef -Wcast-qual -Wimplicit-fallthrough
    -Wno-missing-field-initializers)
  if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
    # Messages are cut on purpose when they do not fit.
    target_compile_options(${target} PRIVATE -Wno-format-truncation)
  endif()
  if(SFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
