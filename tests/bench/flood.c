/* SPDX-License-Identifier: MIT */
/*
 * A UDP flood for the drop sensor's bench and e2e test (run inside a lab
 * namespace only): batches of datagrams through sendmmsg(2), to one
 * destination and port (--one) or to random hosts of a prefix and random
 * ports, for a number of seconds, from a number of processes. Prints the
 * datagrams the kernel took (sendmmsg's count; a full socket buffer is
 * retried, not counted).
 *
 *   flood [-j PROCS] [-t SECONDS] [--one] [--hosts N] PREFIX-ADDRESS [PORT]
 *
 * PREFIX-ADDRESS (v4 or v6) is the first destination: --hosts N (default
 * 254) varies its last byte(s) over N hosts; PORT (default 9999) is the
 * port of --one, the others are random 1-65535.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

struct opts {
        int procs;
        double seconds;
        bool one;
        unsigned hosts;
        int family;
        struct in_addr a4;
        struct in6_addr a6;
        uint16_t port;
};

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift: cheap and good enough to spread tuples over the sets. */
static uint32_t next_random(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return (uint32_t)(*s >> 11);
}

static void fill(const struct opts *o, struct sockaddr_storage *ss, uint64_t *seed)
{
        uint32_t host = o->one ? 0 : next_random(seed) % o->hosts;
        uint16_t port = o->one ? o->port : (uint16_t)(1 + next_random(seed) % 65535);

        memset(ss, 0, sizeof(*ss));
        if (o->family == AF_INET) {
                struct sockaddr_in *s = (struct sockaddr_in *)ss;

                s->sin_family = AF_INET;
                s->sin_addr.s_addr = htonl(ntohl(o->a4.s_addr) + host);
                s->sin_port = htons(port);
        } else {
                struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

                s->sin6_family = AF_INET6;
                s->sin6_addr = o->a6;
                s->sin6_addr.s6_addr[14] += (uint8_t)(host >> 8);
                s->sin6_addr.s6_addr[15] += (uint8_t)host;
                s->sin6_port = htons(port);
        }
}

static unsigned long long sender(const struct opts *o, unsigned id)
{
        static char payload[] = "flood";
        struct sockaddr_storage addrs[BATCH];
        struct mmsghdr msgs[BATCH];
        struct iovec iov = { payload, sizeof(payload) - 1 };
        unsigned long long sent = 0;
        uint64_t seed = 0x9e3779b97f4a7c15ULL * (id + 1) ^ (uint64_t)getpid();
        double end = now() + o->seconds;
        int fd = socket(o->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) {
                perror("socket");
                exit(1);
        }
        for (int i = 0; i < BATCH; i++)
                msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &addrs[i],
                                                         .msg_namelen = o->family == AF_INET
                                                                 ? sizeof(struct sockaddr_in)
                                                                 : sizeof(struct sockaddr_in6),
                                                         .msg_iov = &iov, .msg_iovlen = 1 } };
        for (unsigned long loops = 0;; loops++) {
                int n;

                if ((loops & 63) == 0 && now() >= end)
                        break;
                for (int i = 0; i < BATCH; i++)
                        fill(o, &addrs[i], &seed);
                n = sendmmsg(fd, msgs, BATCH, 0);
                if (n > 0)
                        sent += (unsigned long long)n;
                else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS &&
                         errno != EPERM && errno != ECONNREFUSED) {
                        perror("sendmmsg");
                        exit(1);
                }
        }
        close(fd);
        return sent;
}

static int usage(void)
{
        fprintf(stderr, "usage: flood [-j PROCS] [-t SECONDS] [--one] [--hosts N] ADDRESS [PORT]\n");
        return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
        static const struct option longopts[] = {
                { "one", no_argument, NULL, 'o' },
                { "hosts", required_argument, NULL, 'h' },
                {}
        };
        int c;

        *o = (struct opts){ .procs = 1, .seconds = 5, .hosts = 254, .port = 9999 };
        while ((c = getopt_long(argc, argv, "j:t:", longopts, NULL)) >= 0) {
                switch (c) {
                case 'j':
                        o->procs = atoi(optarg);
                        break;
                case 't':
                        o->seconds = atof(optarg);
                        break;
                case 'o':
                        o->one = true;
                        break;
                case 'h':
                        o->hosts = (unsigned)atoi(optarg);
                        break;
                default:
                        return -1;
                }
        }
        if (optind >= argc || o->procs < 1 || o->procs > 64 || o->hosts < 1 || o->hosts > 65536)
                return -1;
        if (inet_pton(AF_INET, argv[optind], &o->a4) == 1)
                o->family = AF_INET;
        else if (inet_pton(AF_INET6, argv[optind], &o->a6) == 1)
                o->family = AF_INET6;
        else
                return -1;
        if (optind + 1 < argc)
                o->port = (uint16_t)atoi(argv[optind + 1]);
        return 0;
}

int main(int argc, char **argv)
{
        unsigned long long total = 0;
        int pipes[64][2];
        struct opts o;

        if (parse(argc, argv, &o) < 0)
                return usage();
        for (int i = 0; i < o.procs; i++) {
                if (pipe2(pipes[i], O_CLOEXEC) < 0) {
                        perror("pipe2");
                        return 1;
                }
                if (fork() == 0) {
                        unsigned long long n = sender(&o, (unsigned)i);

                        return write(pipes[i][1], &n, sizeof(n)) == sizeof(n) ? 0 : 1;
                }
                close(pipes[i][1]);
        }
        for (int i = 0; i < o.procs; i++) {
                unsigned long long n = 0;

                if (read(pipes[i][0], &n, sizeof(n)) == sizeof(n))
                        total += n;
                close(pipes[i][0]);
        }
        while (wait(NULL) > 0)
                ;
        printf("%llu\n", total);
        return 0;
}
