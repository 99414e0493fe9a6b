/* ota-bench-nodelay: an LD_PRELOAD shim for the benchmark's what-if runs. It sets TCP_NODELAY on
 * every TCP socket a process connects, which Paho never does, to measure what the pipeline
 * would gain if its transport did (ota-bench-transfer --what-if). Diagnosis only: nothing ships
 * with it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  static int (*real_connect)(int, const struct sockaddr*, socklen_t);
  if (!real_connect) *(void**)(&real_connect) = dlsym(RTLD_NEXT, "connect");
  if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM) {
      int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
  }
  return real_connect(fd, addr, len);
}
