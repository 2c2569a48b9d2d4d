/* GnuTLS side of the QUIC module: node identity (key + self-signed
 * certificate) generation, fingerprints, credentials and per-connection TLS
 * sessions wired to ngtcp2_crypto_gnutls.
 *
 * Authentication model: no CA. The server requires a client certificate;
 * both sides run tls_verify() on the peer's certificate, which computes the
 * fingerprint (BLAKE3 of the DER SubjectPublicKeyInfo) and asks the
 * application. Possession of the private key is proven by the TLS 1.3
 * CertificateVerify signature, which GnuTLS checks before the handshake can
 * complete (and a certificate whose key does not match cannot even be
 * loaded: sftq_tls_init returns SFT_ERR_AUTH). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/quic/quic_int.h"
#include "sft/hash.h"

/* TLS 1.3 only; AES-128-GCM first (GnuTLS ChaCha20 is ~10x slower on these
 * machines); compat mode off as QUIC requires. */
static const char PRIORITY[] =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
    "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:"
    "+GROUP-SECP256R1:+GROUP-SECP384R1";

/* ---- files --------------------------------------------------------------- */

static int write_atomic(const char *path, const void *data, size_t len) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 16);
  char *dir = malloc(pl + 2);
  if (!tmp || !dir) {
    free(tmp);
    free(dir);
    return SFT_ERR_NOMEM;
  }
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, ".tmp.XXXXXX", 12);
  memcpy(dir, path, pl + 1);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';

  int rv = SFT_ERR_IO;
  int fd = mkstemp(tmp);
  if (fd < 0) goto out;
  if (fchmod(fd, 0600) != 0) goto fail_unlink;
  const uint8_t *p = data;
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, p + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      goto fail_unlink;
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0) goto fail_unlink;
  if (close(fd) != 0) {
    fd = -1;
    goto fail_unlink;
  }
  fd = -1;
  if (rename(tmp, path) != 0) goto fail_unlink;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  rv = 0;
  goto out;
fail_unlink:
  if (fd >= 0) close(fd);
  unlink(tmp);
out:
  free(tmp);
  free(dir);
  return rv;
}

/* ---- identity ------------------------------------------------------------ */

int sftq_identity_generate(const char *key_path, const char *cert_path) {
  return sftq_identity_generate_type(key_path, cert_path, SFTQ_KEY_ED25519);
}

int sftq_identity_generate_type(const char *key_path, const char *cert_path,
                                enum sftq_key_type type) {
  if (!key_path || !cert_path) return SFT_ERR_INVAL;
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_datum_t kpem = {NULL, 0}, cpem = {NULL, 0};
  int rv = SFT_ERR_UNSUPPORTED;

  if (gnutls_x509_privkey_init(&key) < 0) return SFT_ERR_NOMEM;
  int g;
  if (type == SFTQ_KEY_ECDSA_P256)
    g = gnutls_x509_privkey_generate(
        key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
        0);
  else if (type == SFTQ_KEY_ED25519)
    g = gnutls_x509_privkey_generate(
        key, GNUTLS_PK_EDDSA_ED25519,
        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0);
  else {
    rv = SFT_ERR_INVAL;
    goto out;
  }
  if (g < 0) goto out;
  if (gnutls_x509_crt_init(&crt) < 0) {
    rv = SFT_ERR_NOMEM;
    goto out;
  }
  uint8_t serial[16];
  if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial) < 0) goto out;
  serial[0] &= 0x7f; /* positive INTEGER */
  serial[0] |= 0x01; /* and no leading zero octet */
  time_t now = time(NULL);
  static const char cn[] = "sft";
  if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
      gnutls_x509_crt_set_serial(crt, serial, sizeof serial) < 0 ||
      gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
      /* (time_t)-1: 99991231235959Z, RFC 5280 "no well-defined expiry" */
      gnutls_x509_crt_set_expiration_time(crt, (time_t)-1) < 0 ||
      gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                    sizeof cn - 1) < 0 ||
      gnutls_x509_crt_set_key(crt, key) < 0 ||
      gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
      gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0)
    goto out;
  if (gnutls_x509_crt_sign2(crt, crt, key,
                            type == SFTQ_KEY_ED25519 ? GNUTLS_DIG_UNKNOWN
                                                     : GNUTLS_DIG_SHA256,
                            0) < 0)
    goto out;
  if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                        GNUTLS_PKCS_PLAIN, &kpem) < 0 ||
      gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem) < 0)
    goto out;
  rv = write_atomic(key_path, kpem.data, kpem.size);
  if (rv == 0) rv = write_atomic(cert_path, cpem.data, cpem.size);
out:
  if (kpem.data) {
    gnutls_memset(kpem.data, 0, kpem.size);
    gnutls_free(kpem.data);
  }
  gnutls_free(cpem.data);
  if (crt) gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return rv;
}

static int fp_of_crt(gnutls_x509_crt_t crt, uint8_t fp[SFTQ_FP_LEN]) {
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t spki = {NULL, 0};
  int rv = SFT_ERR_MALFORMED;
  if (gnutls_pubkey_init(&pub) < 0) return SFT_ERR_NOMEM;
  /* gnutls_pubkey_export in DER is the SubjectPublicKeyInfo structure. */
  if (gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
      gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0)
    goto out;
  sft_blake3(spki.data, spki.size, fp);
  rv = 0;
out:
  gnutls_free(spki.data);
  gnutls_pubkey_deinit(pub);
  return rv;
}

int sftq_identity_fp_of_der(const uint8_t *der, size_t len,
                            uint8_t fp[SFTQ_FP_LEN]) {
  gnutls_x509_crt_t crt;
  if (len > UINT32_MAX) return SFT_ERR_TOO_LARGE;
  if (gnutls_x509_crt_init(&crt) < 0) return SFT_ERR_NOMEM;
  gnutls_datum_t d = {(unsigned char *)(uintptr_t)der, (unsigned)len};
  int rv = SFT_ERR_MALFORMED;
  if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0)
    rv = fp_of_crt(crt, fp);
  gnutls_x509_crt_deinit(crt);
  return rv;
}

int sftq_identity_fingerprint(const char *cert_path, uint8_t fp[SFTQ_FP_LEN]) {
  if (!cert_path) return SFT_ERR_INVAL;
  gnutls_datum_t d = {NULL, 0};
  if (gnutls_load_file(cert_path, &d) < 0) return SFT_ERR_IO;
  gnutls_x509_crt_t crt;
  int rv = SFT_ERR_NOMEM;
  if (gnutls_x509_crt_init(&crt) >= 0) {
    rv = SFT_ERR_MALFORMED;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0)
      rv = fp_of_crt(crt, fp);
    gnutls_x509_crt_deinit(crt);
  }
  gnutls_free(d.data);
  return rv;
}

/* ---- credentials and sessions -------------------------------------------- */

/* GnuTLS calls this on both sides once the peer's Certificate message has
 * been received, before the handshake completes. Non-zero aborts the
 * handshake with an alert (bad_certificate). */
static int tls_verify(gnutls_session_t s) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
  sftq_conn *c = sftq_conn_of_ref(ref);
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  if (!certs || n == 0) return GNUTLS_E_NO_CERTIFICATE_FOUND;
  if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
    return GNUTLS_E_CERTIFICATE_ERROR;
  uint8_t fp[SFTQ_FP_LEN];
  if (sftq_identity_fp_of_der(certs[0].data, certs[0].size, fp) != 0)
    return GNUTLS_E_CERTIFICATE_ERROR;
  return sftq_conn_verify_hook(c, fp) == 0 ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

/* DER SubjectPublicKeyInfo of the key in PEM file |key| (public part). */
static int spki_of_keyfile(const char *key, gnutls_datum_t *spki) {
  gnutls_datum_t d = {NULL, 0};
  gnutls_privkey_t pk = NULL;
  gnutls_pubkey_t pub = NULL;
  int rv = SFT_ERR_IO;
  if (gnutls_load_file(key, &d) < 0) return rv;
  rv = SFT_ERR_MALFORMED;
  if (gnutls_privkey_init(&pk) < 0 || gnutls_pubkey_init(&pub) < 0) {
    rv = SFT_ERR_NOMEM;
    goto out;
  }
  if (gnutls_privkey_import_x509_raw(pk, &d, GNUTLS_X509_FMT_PEM, NULL, 0) <
          0 ||
      gnutls_pubkey_import_privkey(pub, pk, 0, 0) < 0 ||
      gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, spki) < 0)
    goto out;
  rv = 0;
out:
  if (pub) gnutls_pubkey_deinit(pub);
  if (pk) gnutls_privkey_deinit(pk);
  if (d.data) {
    gnutls_memset(d.data, 0, d.size);
    gnutls_free(d.data);
  }
  return rv;
}

static int spki_of_certfile(const char *cert, gnutls_datum_t *spki) {
  gnutls_datum_t d = {NULL, 0};
  gnutls_x509_crt_t crt = NULL;
  gnutls_pubkey_t pub = NULL;
  int rv = SFT_ERR_IO;
  if (gnutls_load_file(cert, &d) < 0) return rv;
  rv = SFT_ERR_MALFORMED;
  if (gnutls_x509_crt_init(&crt) < 0 || gnutls_pubkey_init(&pub) < 0) {
    rv = SFT_ERR_NOMEM;
    goto out;
  }
  if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ||
      gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
      gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, spki) < 0)
    goto out;
  rv = 0;
out:
  if (pub) gnutls_pubkey_deinit(pub);
  if (crt) gnutls_x509_crt_deinit(crt);
  gnutls_free(d.data);
  return rv;
}

/* The certificate must carry the public half of the key: otherwise we would
 * present an identity we cannot prove (the peer's CertificateVerify check
 * would fail anyway; refuse early with a clear error). */
int sftq_identity_check_pair(const char *cert, const char *key) {
  gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
  int rv = spki_of_certfile(cert, &a);
  if (rv == 0) rv = spki_of_keyfile(key, &b);
  if (rv == 0 && (a.size != b.size || memcmp(a.data, b.data, a.size) != 0))
    rv = SFT_ERR_AUTH;
  gnutls_free(a.data);
  gnutls_free(b.data);
  return rv;
}

int sftq_tls_init(sftq_tls *t, const char *cert, const char *key,
                  const char *alpn) {
  memset(t, 0, sizeof *t);
  if (!cert || !key) return SFT_ERR_INVAL;
  if (!alpn) alpn = SFTQ_ALPN;
  if (strlen(alpn) == 0 || strlen(alpn) >= sizeof t->alpn) return SFT_ERR_INVAL;
  memcpy(t->alpn, alpn, strlen(alpn) + 1);
  int crv = sftq_identity_check_pair(cert, key);
  if (crv) return crv;
  if (gnutls_certificate_allocate_credentials(&t->cred) < 0)
    return SFT_ERR_NOMEM;
  int r = gnutls_certificate_set_x509_key_file(t->cred, cert, key,
                                               GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    gnutls_certificate_free_credentials(t->cred);
    t->cred = NULL;
    if (r == GNUTLS_E_FILE_ERROR) return SFT_ERR_IO;
    if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) return SFT_ERR_AUTH;
    return SFT_ERR_MALFORMED;
  }
  gnutls_certificate_set_verify_function(t->cred, tls_verify);
  return 0;
}

void sftq_tls_free(sftq_tls *t) {
  if (t->cred) gnutls_certificate_free_credentials(t->cred);
  t->cred = NULL;
}

int sftq_tls_session(sftq_tls *t, gnutls_session_t *out, bool server,
                     ngtcp2_crypto_conn_ref *ref) {
  gnutls_session_t s;
  unsigned flags = server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET
                          : GNUTLS_CLIENT;
  *out = NULL;
  if (gnutls_init(&s, flags | GNUTLS_NO_END_OF_EARLY_DATA) < 0)
    return SFT_ERR_NOMEM;
  int rv = server ? ngtcp2_crypto_gnutls_configure_server_session(s)
                  : ngtcp2_crypto_gnutls_configure_client_session(s);
  if (rv != 0) goto fail;
  if (gnutls_priority_set_direct(s, PRIORITY, NULL) < 0) goto fail;
  if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cred) < 0)
    goto fail;
  if (server) gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
  gnutls_datum_t alpn = {(unsigned char *)t->alpn, (unsigned)strlen(t->alpn)};
  if (gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
    goto fail;
  gnutls_session_set_ptr(s, ref);
  *out = s;
  return 0;
fail:
  gnutls_deinit(s);
  return SFT_ERR_UNSUPPORTED;
}
