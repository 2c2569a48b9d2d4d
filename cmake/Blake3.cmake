# BLAKE3 from the official C sources that Debian's librust-blake3-dev
# installs; compiled by our build at the installed path, never copied into
# this repository. The x86-64 assembly is included and the library picks
# SSE2/SSE4.1/AVX2/AVX-512 at run time (blake3_dispatch.c).
file(GLOB _b3_dirs /usr/share/cargo/registry/blake3-*/c)
list(SORT _b3_dirs COMPARE NATURAL ORDER DESCENDING)
list(GET _b3_dirs 0 BLAKE3_C_DIR)
if(NOT BLAKE3_C_DIR OR NOT EXISTS "${BLAKE3_C_DIR}/blake3.h")
  message(FATAL_ERROR "BLAKE3 C sources not found: run scripts/install-deps "
                      "(package librust-blake3-dev)")
endif()
file(STRINGS "${BLAKE3_C_DIR}/blake3.h" _b3_ver REGEX "#define BLAKE3_VERSION_STRING")
string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" BLAKE3_VERSION "${_b3_ver}")
if(BLAKE3_VERSION VERSION_LESS 1.3.0)
  message(FATAL_ERROR "BLAKE3 ${BLAKE3_VERSION} at ${BLAKE3_C_DIR} is too old (need >= 1.3)")
endif()
message(STATUS "BLAKE3 ${BLAKE3_VERSION} from ${BLAKE3_C_DIR}")

set(_b3_src
  ${BLAKE3_C_DIR}/blake3.c ${BLAKE3_C_DIR}/blake3_dispatch.c ${BLAKE3_C_DIR}/blake3_portable.c)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  list(APPEND _b3_src
    ${BLAKE3_C_DIR}/blake3_sse2_x86-64_unix.S ${BLAKE3_C_DIR}/blake3_sse41_x86-64_unix.S
    ${BLAKE3_C_DIR}/blake3_avx2_x86-64_unix.S ${BLAKE3_C_DIR}/blake3_avx512_x86-64_unix.S)
  set(_b3_defs "")
else()
  set(_b3_defs BLAKE3_NO_SSE2 BLAKE3_NO_SSE41 BLAKE3_NO_AVX2 BLAKE3_NO_AVX512)
endif()
add_library(blake3 STATIC ${_b3_src})
set_target_properties(blake3 PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_definitions(blake3 PRIVATE ${_b3_defs})
# Third-party code: our warning flags do not apply; it is always optimised.
target_compile_options(blake3 PRIVATE -O3 -w)
target_include_directories(blake3 SYSTEM PUBLIC ${BLAKE3_C_DIR})
