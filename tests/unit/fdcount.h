/* Test helper shared by test_quic.c and test_tcp.c: the number of open file
 * descriptors of this process, so that a failed connect can be checked not
 * to leak one. Counted in-process (opendir /proc/self/fd), not with popen:
 * its pipe and child were two more moving parts. */
#ifndef SFT_TEST_FDCOUNT_H
#define SFT_TEST_FDCOUNT_H
#include <dirent.h>

static inline int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d); /* cmocka: include after <cmocka.h> */
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}
#endif
