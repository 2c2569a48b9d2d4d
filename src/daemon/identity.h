/*
 * Node identity on disk: the data directory, the text form of a key
 * fingerprint, and the two trust files.
 *
 * Key and certificate generation live in the QUIC module; this module deals
 * only in raw 32-byte fingerprints and paths (docs/internals/security.md).
 *
 *   known_peers    sender side, trust on first use: "HOST:PORT SFT1-..."
 *   trusted_peers  receiver side: "SFT1-... [label]" (sft trust ID)
 *
 * Both files: UTF-8 text, one entry per line, '#' comments and blank lines
 * allowed, at most SFTD_TRUST_MAX_LINE bytes per line, SFTD_TRUST_MAX_LINES
 * lines and SFTD_TRUST_MAX_BYTES bytes. A malformed line is an error that
 * names the line (never skipped). Files are written 0600 by an atomic
 * rewrite (temporary file, fsync, rename, fsync of the directory); a file
 * that is group- or world-writable is refused. Two processes writing the
 * same file at once may lose one update (last rename wins).
 *
 * Errors: 0 or a negative SFT_ERR_*; functions taking a struct sftd_id_err
 * fill it (when not NULL) with a human-readable message, and with the line
 * number for a malformed file.
 */
#ifndef SFTD_IDENTITY_H
#define SFTD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define SFTD_FP_LEN 32       /* raw fingerprint (from the QUIC module) */
#define SFTD_FP_TEXT_LEN 68  /* "SFT1-" + 8 groups of 7 + 7 dashes */
#define SFTD_FP_TEXT_SIZE 69 /* with the NUL */

#define SFTD_TRUST_MAX_LINE 512
#define SFTD_TRUST_MAX_LINES 10000
#define SFTD_TRUST_MAX_BYTES (1024 * 1024)
#define SFTD_LABEL_MAX 200    /* trusted_peers label, bytes */
#define SFTD_HOSTPORT_MAX 262 /* 253-byte host + ':' + port, or [v6]:port */

#define SFTD_KNOWN_PEERS_FILE "known_peers"
#define SFTD_TRUSTED_PEERS_FILE "trusted_peers"
#define SFTD_KEY_FILE "node.key"
#define SFTD_CERT_FILE "node.crt"

struct sftd_id_err {
  unsigned line; /* 1-based line of a malformed file, 0 if not line-bound */
  char msg[256];
};

/* ---- fingerprint text ---------------------------------------------------
 * "SFT1-" then 56 characters of the RFC 4648 base32 alphabet (A-Z, 2-7,
 * upper case) in 8 dash-separated groups of 7: the first 52 characters are
 * the 256 bits of the fingerprint (the last 4 bits of character 52 are
 * zero), the last 4 are a CRC-20 (polynomial x^20 + x^3 + 1, initial value
 * 0xFFFFF, MSB first) of the 32 bytes. Any error confined to 4 consecutive
 * characters, hence every single-character change and every swap of two
 * neighbours, is detected. Exactly one text per fingerprint: parsing is
 * strict (no lower case, no missing dashes, no surrounding spaces). */

/* Writes the text form of |fp| and a NUL into |out|. */
void sftd_fp_format(const uint8_t fp[SFTD_FP_LEN], char out[SFTD_FP_TEXT_SIZE]);

/* Parses |len| bytes of |text|. Returns 0 and fills |fp|, SFT_ERR_MALFORMED
 * for a text that is not of the form above, or SFT_ERR_DIGEST when the form
 * is right but the check characters do not match (a typo). */
int sftd_fp_parse(const char *text, size_t len, uint8_t fp[SFTD_FP_LEN]);

/* ---- data directory ------------------------------------------------------ */

/* Chooses the data directory: |explicit_dir| (--data-dir) if not NULL or
 * empty; else $SFT_DATA_DIR if set and non-empty; else $XDG_DATA_HOME/sft
 * if XDG_DATA_HOME is an absolute path; else $HOME/.local/share/sft (HOME
 * must be absolute). Writes it into |out| (capacity |cap|). Returns 0,
 * SFT_ERR_NOT_FOUND when no rule applies, SFT_ERR_TOO_LARGE if it does not
 * fit. */
int sftd_datadir_resolve(const char *explicit_dir, char *out, size_t cap);

/* Creates |dir| if missing (like mkdir -p; new directories get mode 0700)
 * and checks it: a directory (symlinks followed), owned by the effective
 * user, not group- or world-writable. Returns 0, SFT_ERR_PATH (not a
 * directory, wrong owner, writable by others: |err| says which and how to
 * fix it), or SFT_ERR_IO / SFT_ERR_NOT_FOUND from the system. */
int sftd_datadir_ensure(const char *dir, struct sftd_id_err *err);

/* |dir| + "/" + |file| into |out|. SFT_ERR_TOO_LARGE if it does not fit. */
int sftd_datadir_file(const char *dir, const char *file, char *out, size_t cap);

/* ---- known_peers (sender side, TOFU) --------------------------------------
 */

/* Checks a "HOST:PORT" token: HOST a DNS name or IPv4 address ([A-Za-z0-9._-],
 * 1..253 bytes, not starting with '.' or '-') or a bracketed IPv6 address
 * ("[" hex digits, ':', '.', optional "%zone" "]"); PORT 1..65535 in
 * decimal without leading zeros. Returns 0 or SFT_ERR_INVAL. Host names
 * compare without regard to ASCII case; they are stored in lower case. */
int sftd_hostport_check(const char *hostport);

/* Compares the fingerprint |fp| presented by |hostport| with known_peers at
 * |path|. Returns 0 when an entry for |hostport| holds |fp|,
 * SFT_ERR_NOT_FOUND when there is no entry for it (or no file: first use),
 * SFT_ERR_AUTH when entries exist and none holds |fp| (the key changed:
 * warn loudly, do not connect), SFT_ERR_INVAL for a bad |hostport|,
 * SFT_ERR_MALFORMED / SFT_ERR_TOO_LARGE for a bad file (|err| names the
 * line), SFT_ERR_PATH for an unsafe file, SFT_ERR_IO. */
int sftd_known_peers_check(const char *path, const char *hostport,
                           const uint8_t fp[SFTD_FP_LEN],
                           struct sftd_id_err *err);

/* Records |fp| for |hostport| (TOFU accept, or the user accepting a new
 * key): every existing entry for |hostport| is replaced by one new line at
 * the end; other lines, comments included, are kept. Creates the file
 * (0600) if missing. Errors as sftd_known_peers_check (never AUTH); a
 * malformed file is left untouched. */
int sftd_known_peers_set(const char *path, const char *hostport,
                         const uint8_t fp[SFTD_FP_LEN],
                         struct sftd_id_err *err);

/* Removes every entry for |hostport|. SFT_ERR_NOT_FOUND if there was none. */
int sftd_known_peers_remove(const char *path, const char *hostport,
                            struct sftd_id_err *err);

/* ---- trusted_peers (receiver side) ----------------------------------------
 */

/* Returns 0 if |fp| is listed in trusted_peers at |path| (copying its label,
 * possibly empty, into |label| of capacity |label_cap| when |label| is not
 * NULL; cut to fit), SFT_ERR_NOT_FOUND if not (or no file), or a file error
 * as above. */
int sftd_trusted_peers_lookup(const char *path, const uint8_t fp[SFTD_FP_LEN],
                              char *label, size_t label_cap,
                              struct sftd_id_err *err);

/* Appends |fp| with |label| (NULL or "" for none; at most SFTD_LABEL_MAX
 * bytes of printable UTF-8, see sft_text_check, no leading/trailing space).
 * Returns 0, SFT_ERR_EXISTS if |fp| is already trusted (file unchanged),
 * SFT_ERR_INVAL for a bad label, or a file error. Creates the file 0600. */
int sftd_trusted_peers_add(const char *path, const uint8_t fp[SFTD_FP_LEN],
                           const char *label, struct sftd_id_err *err);

/* Removes |fp|. SFT_ERR_NOT_FOUND if it was not listed. */
int sftd_trusted_peers_remove(const char *path, const uint8_t fp[SFTD_FP_LEN],
                              struct sftd_id_err *err);

#endif /* SFTD_IDENTITY_H */
