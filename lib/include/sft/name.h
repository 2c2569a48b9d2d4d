/*
 * Received file names: validation before any filesystem call.
 *
 * A name travels in an OFFER as UTF-8 bytes with an explicit length. It is a
 * relative path of components separated by '/'. It is data chosen by a peer
 * that may be hostile, so it is checked against the rules below before the
 * daemon hands it to src/daemon/fsafe (which enforces confinement a second
 * time, in the kernel). The rules and their reasons are in
 * docs/internals/security.md. Pure: no I/O, no allocation, no global state.
 */
#ifndef SFT_NAME_H
#define SFT_NAME_H

#include <stddef.h>

#include "sft/limits.h"

/* Suffix of the temporary file a transfer writes before the final rename.
 * Received names may not end with it (in any component, any letter case). */
#define SFT_NAME_PART_SUFFIX ".sft-part"
#define SFT_NAME_PART_SUFFIX_LEN 9

/* Why a name was rejected. SFT_NAME_OK (0) means accepted. */
enum sft_name_reason {
  SFT_NAME_OK = 0,
  SFT_NAME_EMPTY,              /* zero bytes */
  SFT_NAME_TOO_LONG,           /* more than SFT_MAX_NAME bytes */
  SFT_NAME_TOO_DEEP,           /* more than SFT_MAX_NAME_DEPTH components */
  SFT_NAME_ABSOLUTE,           /* starts with '/' */
  SFT_NAME_EMPTY_COMPONENT,    /* "a//b", trailing '/' */
  SFT_NAME_DOT_COMPONENT,      /* a "." or ".." component */
  SFT_NAME_COMPONENT_TOO_LONG, /* more than SFT_MAX_NAME_COMPONENT bytes */
  SFT_NAME_BACKSLASH,          /* '\' anywhere (Windows separator, UNC) */
  SFT_NAME_DRIVE,              /* component starting "X:" (drive letter) */
  SFT_NAME_CONTROL,            /* NUL, C0, DEL, C1, U+2028/U+2029 */
  SFT_NAME_BAD_UTF8,           /* overlong, surrogate, > U+10FFFF, cut */
  SFT_NAME_INVISIBLE,          /* zero-width, bidi control, other format */
  SFT_NAME_TRAILING_DOT_SPACE, /* component ends with '.' or ' ' */
  SFT_NAME_RESERVED_DEVICE,    /* CON, PRN, AUX, NUL, COM0-9, LPT0-9, ... */
  SFT_NAME_PART_SUFFIX_USED,   /* component ends with ".sft-part" */
};

/* Checks |len| bytes at |name| (need not be NUL-terminated; an embedded NUL
 * is rejected). Returns 0 when the name is acceptable, else SFT_ERR_PATH;
 * if |reason| is not NULL it receives the first rule broken (SFT_NAME_OK on
 * success); if |offset| is not NULL it receives the byte offset where the
 * problem was found (0 on success). |name| may be NULL only if |len| is 0. */
int sft_name_validate(const char *name, size_t len,
                      enum sft_name_reason *reason, size_t *offset);

/* Static English text for |reason| (for CLI and log messages). Never NULL. */
const char *sft_name_reason_str(enum sft_name_reason reason);

/* One component of a valid name: |len| bytes at |name + off|. */
struct sft_name_component {
  size_t off;
  size_t len;
};

struct sft_name_parts {
  size_t count; /* 1..SFT_MAX_NAME_DEPTH */
  struct sft_name_component comp[SFT_MAX_NAME_DEPTH];
};

/* Validates |name| (as sft_name_validate) and splits it into components.
 * Returns 0 and fills |out|, or SFT_ERR_PATH (|out->count| is then 0 and
 * |reason|, if not NULL, says why). The components refer into |name|. */
int sft_name_split(const char *name, size_t len, struct sft_name_parts *out,
                   enum sft_name_reason *reason);

/* Checks that |len| bytes of free text (a peer label, an error message from
 * a peer) are valid UTF-8 with no control (C0, DEL, C1, U+2028/9) and no
 * invisible/bidi format character, so it can be printed as is. Returns 0 or
 * SFT_ERR_MALFORMED. |text| may be NULL only if |len| is 0. */
int sft_text_check(const char *text, size_t len);

/* Writes a printable, unambiguous rendering of |len| arbitrary bytes into
 * |out| (capacity |cap| > 0, always NUL-terminated): printable ASCII except
 * '\' is copied; '\' becomes "\\"; every other byte of a code point that
 * sft_text_check would reject, and every byte of invalid UTF-8, becomes
 * "\xHH"; other valid UTF-8 is copied. Output that does not fit is cut at a
 * character boundary and ends with "...". Returns the number of bytes
 * written (without the NUL). Use it to show peer-supplied names. */
size_t sft_name_escape(const char *name, size_t len, char *out, size_t cap);

#endif /* SFT_NAME_H */
