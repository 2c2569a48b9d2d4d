/*
 * `sft hash`: file digests in b3sum's exact output format, and with --chunks
 * the chunk digests and the sft root (docs/internals/integrity.md).
 *
 * Each file is read once, in blocks holding a whole number of chunks; every
 * block feeds the whole-file hasher in one large update and the chunk hasher
 * chunk by chunk. Chunk digests are kept (32 bytes each, at most
 * SFT_MAX_CHUNKS) because they are printed after the whole-file line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sft/hash.h"
#include "sft/limits.h"

#define HASH_BLOCK_TARGET (1024u * 1024) /* read size when chunks are small */

struct hash_opts {
  int chunks;
  uint32_t chunk_size;
  enum sft_hash_algo algo;
};

static void hash_usage(FILE *f) {
  fprintf(
      f,
      "usage: sft hash [--chunks] [--chunk-size SIZE] [--algo blake3|sha256] "
      "[FILE]...\n"
      "\n"
      "Prints one line per FILE, exactly as b3sum does:\n"
      "  <64 hex digits>  <name>\n"
      "A name holding a backslash or a newline is written with `\\\\` and "
      "`\\n`\nfor them and the line starts with a backslash; bytes that are "
      "not UTF-8\nare shown as U+FFFD. `-`, or no FILE at all, reads standard "
      "input.\n"
      "\n"
      "options:\n"
      "  --chunks           after each file's line, print its chunks and "
      "sft root:\n"
      "                       algo <blake3|sha256>\n"
      "                       chunk_size <bytes>\n"
      "                       chunks <count>\n"
      "                       chunk <index> <64 hex>   (one per chunk, "
      "index from 0)\n"
      "                       root <64 hex>\n"
      "  --chunk-size SIZE  chunk size for --chunks: 65536, 64K, 64KiB, 1M "
      "...\n"
      "                     from 4KiB to 16MiB (default 1MiB)\n"
      "  --algo ALGO        blake3 (default) or sha256, for every digest "
      "printed\n"
      "  -h, --help         print this help\n"
      "\n"
      "Exit status: 0 if every file was hashed, 1 if some file could not be "
      "read\n(the others are still hashed), 2 for bad arguments.\n");
}

/* Length of the UTF-8 sequence at |s| if it is well formed (Unicode Table
 * 3-7); otherwise 0 with *bad set to the length of its maximal subpart (at
 * least 1), which is replaced by one U+FFFD, as Rust's to_string_lossy. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
  unsigned char b = s[0], lo = 0x80, hi = 0xbf;
  size_t len;
  if (b < 0x80)
    return 1;
  if (b >= 0xc2 && b <= 0xdf)
    len = 2;
  else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0)
      lo = 0xa0;
    else if (b == 0xed)
      hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0)
      lo = 0x90;
    else if (b == 0xf4)
      hi = 0x8f;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i < len; i++) {
    if (i >= n || s[i] < lo || s[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80;
    hi = 0xbf;
  }
  return len;
}

/* b3sum's line: [\]<hex>  <name>, the name lossily UTF-8 and escaped. */
static void print_digest_line(const uint8_t d[SFT_HASH_LEN], const char *name) {
  const unsigned char *s = (const unsigned char *)name;
  size_t n = strlen(name);
  char hex[2 * SFT_HASH_LEN + 1];
  int escaped = strchr(name, '\\') != NULL || strchr(name, '\n') != NULL;
  sft_hex(d, SFT_HASH_LEN, hex);
  printf("%s%s  ", escaped ? "\\" : "", hex);
  for (size_t i = 0; i < n;) {
    size_t bad = 0, len = utf8_seq(s + i, n - i, &bad);
    if (len == 0) {
      fputs("\xef\xbf\xbd", stdout);
      i += bad;
    } else if (escaped && s[i] == '\\') {
      fputs("\\\\", stdout);
      i++;
    } else if (escaped && s[i] == '\n') {
      fputs("\\n", stdout);
      i++;
    } else {
      fwrite(s + i, 1, len, stdout);
      i += len;
    }
  }
  putchar('\n');
}

/* Fills |buf| up to |cap| bytes unless EOF comes first. Returns the count,
 * or -1 with errno set. */
static ssize_t read_full(int fd, uint8_t *buf, size_t cap) {
  size_t got = 0;
  while (got < cap) {
    ssize_t r = read(fd, buf + got, cap - got);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

/* Digest storage grown by doubling, bounded by SFT_MAX_CHUNKS. */
struct digest_list {
  uint8_t *d;
  uint64_t n, cap;
};

static int digest_list_push(struct digest_list *l, const uint8_t *dg) {
  if (l->n == l->cap) {
    uint64_t cap = l->cap ? 2 * l->cap : 1024;
    uint8_t *p;
    if (cap > SFT_MAX_CHUNKS)
      cap = SFT_MAX_CHUNKS;
    if (l->n >= cap)
      return SFT_ERR_TOO_LARGE;
    p = realloc(l->d, (size_t)cap * SFT_HASH_LEN);
    if (!p)
      return SFT_ERR_NOMEM;
    l->d = p;
    l->cap = cap;
  }
  memcpy(l->d + l->n * SFT_HASH_LEN, dg, SFT_HASH_LEN);
  l->n++;
  return 0;
}

/* Hashes one file and prints its lines. Returns 0, or 1 after reporting an
 * error about this file (nothing printed on stdout for it then). */
static int hash_one(const struct hash_opts *o, const char *name, uint8_t *buf,
                    size_t block, struct digest_list *dl) {
  int is_stdin = !strcmp(name, "-");
  int fd = is_stdin ? STDIN_FILENO : open(name, O_RDONLY | O_CLOEXEC);
  struct sft_hasher whole;
  struct sft_root_ctx root;
  uint8_t digest[SFT_HASH_LEN], rootd[SFT_HASH_LEN];
  char hex[2 * SFT_HASH_LEN + 1];
  int rc = 0;

  if (fd < 0) {
    cli_error("%s: %s", name, strerror(errno));
    return 1;
  }
  if (!is_stdin)
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  dl->n = 0;
  (void)sft_hasher_init(&whole, o->algo);
  (void)sft_root_init(&root, o->algo);
  for (;;) {
    ssize_t got = read_full(fd, buf, block);
    if (got < 0) {
      cli_error("%s: %s", name, strerror(errno));
      rc = 1;
      break;
    }
    if (got == 0)
      break;
    sft_hasher_update(&whole, buf, (size_t)got);
    for (size_t off = 0; o->chunks && off < (size_t)got; off += o->chunk_size) {
      size_t len = (size_t)got - off;
      int err;
      if (len > o->chunk_size)
        len = o->chunk_size;
      (void)sft_hash(o->algo, buf + off, len, digest);
      err = digest_list_push(dl, digest);
      if (err == 0)
        err = sft_root_push(&root, digest);
      if (err != 0) {
        if (err == SFT_ERR_TOO_LARGE)
          cli_error("%s: more than %llu chunks; use a larger --chunk-size",
                    name, (unsigned long long)SFT_MAX_CHUNKS);
        else
          cli_error("%s: %s", name, sft_strerror(err));
        rc = 1;
        goto done;
      }
    }
    if ((size_t)got < block)
      break;
  }
done:
  if (!is_stdin)
    close(fd);
  if (rc != 0)
    return rc;
  sft_hasher_final(&whole, digest);
  print_digest_line(digest, name);
  if (o->chunks) {
    (void)sft_root_final(&root, rootd);
    printf("algo %s\nchunk_size %u\nchunks %llu\n", sft_hash_algo_name(o->algo),
           (unsigned)o->chunk_size, (unsigned long long)dl->n);
    for (uint64_t i = 0; i < dl->n; i++) {
      sft_hex(dl->d + i * SFT_HASH_LEN, SFT_HASH_LEN, hex);
      printf("chunk %llu %s\n", (unsigned long long)i, hex);
    }
    sft_hex(rootd, SFT_HASH_LEN, hex);
    printf("root %s\n", hex);
  }
  return 0;
}

int cmd_hash_main(int argc, char **argv) {
  enum { OPT_CHUNKS = 256, OPT_CHUNK_SIZE, OPT_ALGO };
  static const struct option longopts[] = {
      {"chunks", no_argument, NULL, OPT_CHUNKS},
      {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
      {"algo", required_argument, NULL, OPT_ALGO},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct hash_opts o = {0, SFT_CHUNK_SIZE_DEFAULT, SFT_HASH_BLAKE3};
  struct digest_list dl = {NULL, 0, 0};
  int status = SFT_EXIT_OK, c;
  size_t block;
  uint8_t *buf;

  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_CHUNKS:
      o.chunks = 1;
      break;
    case OPT_CHUNK_SIZE: {
      unsigned long long v;
      if (cli_parse_size(optarg, &v) != 0) {
        cli_error("hash: invalid --chunk-size '%s' (a size such as 65536, "
                  "64K, 64KiB, 1M)",
                  optarg);
        return SFT_EXIT_USAGE;
      }
      if (v < SFT_CHUNK_SIZE_MIN || v > SFT_CHUNK_SIZE_MAX) {
        cli_error("hash: --chunk-size %s is out of range: it must be from "
                  "%u (4KiB) to %u (16MiB) bytes",
                  optarg, SFT_CHUNK_SIZE_MIN, SFT_CHUNK_SIZE_MAX);
        return SFT_EXIT_USAGE;
      }
      o.chunk_size = (uint32_t)v;
      break;
    }
    case OPT_ALGO:
      if (sft_hash_algo_parse(optarg, &o.algo) != 0) {
        cli_error("hash: unknown --algo '%s' (blake3 or sha256)", optarg);
        return SFT_EXIT_USAGE;
      }
      break;
    case 'h':
      hash_usage(stdout);
      return SFT_EXIT_OK;
    case ':':
      cli_error("hash: option '%s' needs a value (see `sft hash --help`)",
                argv[optind - 1]);
      return SFT_EXIT_USAGE;
    default:
      cli_error("hash: unknown option '%s' (see `sft hash --help`)",
                argv[optind - 1]);
      return SFT_EXIT_USAGE;
    }
  }
  /* A whole number of chunks per read, about 1 MiB or one chunk. */
  block = o.chunk_size >= HASH_BLOCK_TARGET
              ? o.chunk_size
              : (HASH_BLOCK_TARGET / o.chunk_size) * o.chunk_size;
  buf = malloc(block);
  if (!buf) {
    cli_error("hash: %s", sft_strerror(SFT_ERR_NOMEM));
    return SFT_EXIT_FAILURE;
  }
  if (optind >= argc) { /* no FILE: standard input, as b3sum */
    if (hash_one(&o, "-", buf, block, &dl) != 0)
      status = SFT_EXIT_FAILURE;
  }
  for (int i = optind; i < argc; i++)
    if (hash_one(&o, argv[i], buf, block, &dl) != 0)
      status = SFT_EXIT_FAILURE;
  free(buf);
  free(dl.d);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("hash: writing output: %s", strerror(errno));
    return SFT_EXIT_FAILURE;
  }
  return status;
}
