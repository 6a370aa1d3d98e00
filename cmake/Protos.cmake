# Generates C++ for Temporal's pinned API protos (fetched, never committed) and for
# Almanac's own protos in proto/.

set(TEMPORAL_API_DIR ${CMAKE_BINARY_DIR}/temporal-api)
execute_process(
  COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fetch-temporal-api.sh ${TEMPORAL_API_DIR}
  RESULT_VARIABLE fetch_result)
if(NOT fetch_result EQUAL 0)
  message(FATAL_ERROR "fetching the Temporal API protos failed")
endif()

set(PROTO_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${PROTO_GEN_DIR})

# almanac_generate(<out-var> <import-root> <grpc?> <files...>)
function(almanac_generate out_srcs root with_grpc)
  set(srcs)
  foreach(proto ${ARGN})
    file(RELATIVE_PATH rel ${root} ${proto})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(outputs ${PROTO_GEN_DIR}/${base}.pb.cc ${PROTO_GEN_DIR}/${base}.pb.h)
    set(args --cpp_out=${PROTO_GEN_DIR})
    if(with_grpc AND rel MATCHES "service\\.proto$")
      list(APPEND outputs ${PROTO_GEN_DIR}/${base}.grpc.pb.cc ${PROTO_GEN_DIR}/${base}.grpc.pb.h)
      list(APPEND args --grpc_out=${PROTO_GEN_DIR} --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc -I${TEMPORAL_API_DIR} -I${CMAKE_SOURCE_DIR}/proto ${args} ${proto}
      DEPENDS ${proto} protobuf::protoc
      COMMENT "protoc ${rel}"
      VERBATIM)
    foreach(o ${outputs})
      if(o MATCHES "\\.cc$")
        list(APPEND srcs ${o})
      endif()
    endforeach()
  endforeach()
  set(${out_srcs} ${srcs} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE TEMPORAL_PROTOS
  ${TEMPORAL_API_DIR}/temporal/api/*.proto
  ${TEMPORAL_API_DIR}/google/api/*.proto
  ${TEMPORAL_API_DIR}/google/rpc/*.proto
  ${TEMPORAL_API_DIR}/nexusannotations/*.proto)
# temporal/api/export's package is a C++ keyword that this protoc does not escape, and
# nothing Almanac serves uses it.
list(FILTER TEMPORAL_PROTOS EXCLUDE REGEX "/temporal/api/export/")
almanac_generate(TEMPORAL_API_SRCS ${TEMPORAL_API_DIR} ON ${TEMPORAL_PROTOS})
add_library(temporal_api STATIC ${TEMPORAL_API_SRCS})
# Generated code: no warnings, and no debug info, which makes it slow to build and link.
target_compile_options(temporal_api PRIVATE -w -g0)
target_include_directories(temporal_api PUBLIC ${PROTO_GEN_DIR})
target_link_libraries(temporal_api PUBLIC protobuf::libprotobuf PkgConfig::GRPCPP)

file(GLOB_RECURSE ALMANAC_PROTOS ${CMAKE_SOURCE_DIR}/proto/*.proto)
almanac_generate(ALMANAC_PROTO_SRCS ${CMAKE_SOURCE_DIR}/proto OFF ${ALMANAC_PROTOS})
add_library(almanac_proto STATIC ${ALMANAC_PROTO_SRCS})
target_compile_options(almanac_proto PRIVATE -w)
target_link_libraries(almanac_proto PUBLIC temporal_api)
