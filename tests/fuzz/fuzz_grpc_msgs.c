/* Fuzz the gRPC request decoding (src/daemon/grpc): the first input byte
 * picks one of the eight request types, the rest is the message.
 *  - protobuf-c unpack of the raw type never crashes; whatever it accepts
 *    packs again, and unpacks again when it had no unknown fields;
 *  - sftd_grpc_check_request (size bound, unpack, field bounds, enum ranges,
 *    SendChunk digest) never crashes and only returns the documented codes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/grpc/grpc.h"
#include "sft.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
  const char *method;
  const ProtobufCMessageDescriptor *desc;
} types[] = {
    {"/sft.v1.Agent/SendChunk", &sft__v1__send_chunk_request__descriptor},
    {"/sft.v1.Agent/GetTransferStatus",
     &sft__v1__get_transfer_status_request__descriptor},
    {"/sft.v1.Agent/SendFile", &sft__v1__send_file_request__descriptor},
    {"/sft.v1.Agent/Pause", &sft__v1__transfer_id_request__descriptor},
    {"/sft.v1.Agent/Resume", &sft__v1__transfer_id_request__descriptor},
    {"/sft.v1.Agent/Cancel", &sft__v1__transfer_id_request__descriptor},
    {"/sft.v1.Agent/ListTransfers",
     &sft__v1__list_transfers_request__descriptor},
    {"/sft.v1.Agent/WatchTransfer",
     &sft__v1__watch_transfer_request__descriptor},
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t t = data[0] % NTYPES;
  const uint8_t *p = data + 1;
  size_t n = size - 1;

  ProtobufCMessage *m = protobuf_c_message_unpack(types[t].desc, NULL, n, p);
  int unpacked = m != NULL;
  if (m) {
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
      abort();
    if (protobuf_c_message_pack(m, buf) != len)
      abort();
    ProtobufCMessage *m2 =
        protobuf_c_message_unpack(types[t].desc, NULL, len, buf);
    /* protobuf-c keeps unknown fields it accepted (even a field number 0
     * in an overlong tag) and may refuse them on the way back: only known
     * fields must round-trip */
    if (!m2 && m->n_unknown_fields == 0)
      abort();
    if (m2)
      protobuf_c_message_free_unpacked(m2, NULL);
    free(buf);
    protobuf_c_message_free_unpacked(m, NULL);
  }

  enum sftd_grpc_code c = sftd_grpc_check_request(types[t].method, p, n);
  if (c != SFTD_GRPC_OK && c != SFTD_GRPC_INVALID_ARGUMENT &&
      c != SFTD_GRPC_RESOURCE_EXHAUSTED)
    abort();
  /* a request protobuf-c rejects is never OK */
  if (!unpacked && c == SFTD_GRPC_OK)
    abort();
  return 0;
}
