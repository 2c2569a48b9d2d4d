/* The node's identity in its data directory: glue between identity.c (data
 * directory, fingerprint text, trust files) and the QUIC module (key and
 * certificate generation, fingerprints). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/identity.h"
#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "sft/limits.h"

int sftd_node_load(const char *data_dir, struct sftd_node *n, char *why,
                   size_t whylen) {
  struct sftd_id_err e = {0};
  int rv, have_key, have_cert;

  memset(n, 0, sizeof(*n));
  rv = sftd_datadir_resolve(data_dir, n->data_dir, sizeof(n->data_dir));
  if (rv) {
    snprintf(why, whylen,
             "no data directory: pass --data-dir DIR or set SFT_DATA_DIR "
             "(HOME is not set)");
    return rv;
  }
  rv = sftd_datadir_ensure(n->data_dir, &e);
  if (rv) {
    snprintf(why, whylen, "data directory %s: %s", n->data_dir,
             e.msg[0] ? e.msg : sft_strerror(rv));
    return rv;
  }
  if (sftd_datadir_file(n->data_dir, SFTD_KEY_FILE, n->key_path,
                        sizeof(n->key_path)) ||
      sftd_datadir_file(n->data_dir, SFTD_CERT_FILE, n->cert_path,
                        sizeof(n->cert_path))) {
    snprintf(why, whylen, "data directory path too long: %s", n->data_dir);
    return SFT_ERR_TOO_LARGE;
  }
  have_key = access(n->key_path, F_OK) == 0;
  have_cert = access(n->cert_path, F_OK) == 0;
  if (have_key != have_cert) {
    snprintf(why, whylen,
             "%s exists but %s does not: the identity is incomplete; move "
             "the remaining file away to create a new identity",
             have_key ? n->key_path : n->cert_path,
             have_key ? n->cert_path : n->key_path);
    return SFT_ERR_STATE;
  }
  if (!have_key) {
    rv = sftq_identity_generate(n->key_path, n->cert_path);
    if (rv) {
      snprintf(why, whylen, "cannot create this node's key in %s: %s",
               n->data_dir, sft_strerror(rv));
      return rv;
    }
  }
  rv = sftq_identity_fingerprint(n->cert_path, n->fp);
  if (rv) {
    snprintf(why, whylen, "cannot read this node's certificate %s: %s",
             n->cert_path, sft_strerror(rv));
    return rv;
  }
  sftd_fp_format(n->fp, n->fp_text);
  return 0;
}

static int trust_path(const struct sftd_node *n, const char *file, char *out,
                      size_t cap) {
  return sftd_datadir_file(n->data_dir, file, out, cap);
}

static void hostport(const char *host, uint16_t port, char *out, size_t cap) {
  if (strchr(host, ':'))
    snprintf(out, cap, "[%s]:%u", host, port);
  else
    snprintf(out, cap, "%s:%u", host, port);
}

int sftd_trust_add(const struct sftd_node *n, const uint8_t fp[SFTD_FP_LEN],
                   const char *label, char *why, size_t whylen) {
  char path[4200];
  struct sftd_id_err e = {0};
  int rv = trust_path(n, SFTD_TRUSTED_PEERS_FILE, path, sizeof(path));
  if (!rv)
    rv = sftd_trusted_peers_add(path, fp, label, &e);
  if (rv && why)
    snprintf(why, whylen, "%s", e.msg[0] ? e.msg : sft_strerror(rv));
  return rv;
}

int sftd_node_check_known(const struct sftd_node *n, const char *host,
                          uint16_t port, const uint8_t fp[SFTD_FP_LEN],
                          int *is_new) {
  char path[4200], hp[SFTD_HOSTPORT_MAX + 8];
  int rv = trust_path(n, SFTD_KNOWN_PEERS_FILE, path, sizeof(path));
  *is_new = 0;
  if (rv)
    return rv;
  hostport(host, port, hp, sizeof(hp));
  rv = sftd_known_peers_check(path, hp, fp, NULL);
  if (rv == SFT_ERR_NOT_FOUND) {
    *is_new = 1;
    return 0;
  }
  return rv;
}

int sftd_node_add_known(const struct sftd_node *n, const char *host,
                        uint16_t port, const uint8_t fp[SFTD_FP_LEN]) {
  char path[4200], hp[SFTD_HOSTPORT_MAX + 8];
  int rv = trust_path(n, SFTD_KNOWN_PEERS_FILE, path, sizeof(path));
  if (rv)
    return rv;
  hostport(host, port, hp, sizeof(hp));
  return sftd_known_peers_set(path, hp, fp, NULL);
}

int sftd_node_trusted(const struct sftd_node *n,
                      const uint8_t fp[SFTD_FP_LEN]) {
  char path[4200];
  int rv = trust_path(n, SFTD_TRUSTED_PEERS_FILE, path, sizeof(path));
  if (rv)
    return rv;
  return sftd_trusted_peers_lookup(path, fp, NULL, 0, NULL);
}

int sftd_parse_rate(const char *s, uint64_t *bps, const char **why) {
  return sftd_parse_bits_per_sec(s, bps, why);
}

int sftd_parse_fec(const char *s, uint32_t *k, uint32_t *m, int *off,
                   const char **why) {
  unsigned long a, b;
  char *end;
  *k = *m = 0;
  *off = 0;
  if (!strcmp(s, "auto"))
    return 0;
  if (!strcmp(s, "off")) {
    *off = 1;
    return 0;
  }
  if (*s < '0' || *s > '9')
    goto bad;
  a = strtoul(s, &end, 10);
  if (*end != '+' || end[1] < '0' || end[1] > '9')
    goto bad;
  b = strtoul(end + 1, &end, 10);
  if (*end)
    goto bad;
  if (a < 1 || a + b > SFT_MAX_STRIPE) {
    *why = "K must be at least 1 and K + M at most 255";
    return SFT_ERR_INVAL;
  }
  *k = (uint32_t)a;
  *m = (uint32_t)b;
  return 0;
bad:
  *why = "not auto, off or K+M (e.g. 10+3)";
  return SFT_ERR_INVAL;
}
