# gRPC service of sftd (src/daemon/grpc, docs/internals/grpc.md).
# Included by CMakeLists.txt right after the sftd library is defined:
#   include(cmake/Grpc.cmake OPTIONAL)
# Generates proto/sft.proto with protoc-c into the build directory, adds the
# generated code to sftd and links gRPC core + protobuf-c. The sources in
# src/daemon/grpc/*.c are already in sftd through the daemon glob.
pkg_check_modules(GRPC     REQUIRED IMPORTED_TARGET grpc)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
find_program(PROTOC_C protoc-c REQUIRED)
find_package(Threads REQUIRED)

set(SFT_PROTO_SRC ${CMAKE_SOURCE_DIR}/proto/sft.proto)
set(SFT_PROTO_OUT ${CMAKE_BINARY_DIR}/proto)
add_custom_command(
  OUTPUT ${SFT_PROTO_OUT}/sft.pb-c.c ${SFT_PROTO_OUT}/sft.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${SFT_PROTO_OUT}
  COMMAND ${PROTOC_C} --c_out=${SFT_PROTO_OUT} -I${CMAKE_SOURCE_DIR}/proto
          ${SFT_PROTO_SRC}
  DEPENDS ${SFT_PROTO_SRC}
  COMMENT "protoc-c proto/sft.proto"
  VERBATIM)
# Generated code: not held to the project's warning flags.
set_source_files_properties(${SFT_PROTO_OUT}/sft.pb-c.c PROPERTIES
  GENERATED TRUE COMPILE_OPTIONS "-w")
target_sources(sftd PRIVATE ${SFT_PROTO_OUT}/sft.pb-c.c)
# "sft.pb-c.h": used by src/daemon/grpc/*.c and tests/fuzz/fuzz_grpc_msgs.c
# only (src/daemon/grpc/grpc.h itself has no protobuf types).
target_include_directories(sftd PUBLIC ${SFT_PROTO_OUT})
target_link_libraries(sftd PUBLIC PkgConfig::GRPC PkgConfig::PROTOBUFC
                      Threads::Threads)
