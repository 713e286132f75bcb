/* Load client for tests/bench/run: CONC threads, each in a loop: connect to
 * 127.0.0.1:PORT, send PAYLOAD (if any), read until EOF, close. Records the
 * latency of every probe (connect to EOF) and prints one line:
 *
 *   probes N errors E seconds S rate R p50_us A p99_us B max_us C
 *
 * usage: loadgen PORT CONC SECONDS COUNT [PAYLOAD [GAP_US]]
 *   SECONDS > 0: run for that long; else run COUNT probes in total.
 *   PAYLOAD understands \n, \r and \t.
 *   GAP_US: each client pauses that long between probes (default 0), so that
 *   every probe meets an idle server, as HAProxy's probes every few seconds do.
 * A probe counts as an error unless the reply is one line ending in \n.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static double seconds;
static long count;
static atomic_long taken;
static char payload[256];
static size_t payload_len;
static uint64_t deadline_ns;
static long gap_us;

struct result {
    uint32_t *lat_us;
    size_t n, cap;
    long errors;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int probe(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    if (payload_len && write(fd, payload, payload_len) != (ssize_t)payload_len) {
        close(fd);
        return -1;
    }
    char buf[512];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        got += (size_t)r;
        if (got == sizeof buf)
            break;
    }
    close(fd);
    if (got == 0 || buf[got - 1] != '\n' || memchr(buf, '\n', got) != buf + got - 1)
        return -1;
    return 0;
}

static void *worker(void *arg) {
    struct result *res = arg;
    for (;;) {
        if (seconds > 0) {
            if (now_ns() >= deadline_ns)
                break;
        } else if (atomic_fetch_add(&taken, 1) >= count) {
            break;
        }
        if (gap_us > 0)
            usleep((useconds_t)gap_us);
        uint64_t t0 = now_ns();
        int bad = probe();
        uint64_t t1 = now_ns();
        if (bad) {
            res->errors++;
            continue;
        }
        if (res->n == res->cap) {
            res->cap = res->cap ? res->cap * 2 : 65536;
            res->lat_us = realloc(res->lat_us, res->cap * sizeof *res->lat_us);
            if (!res->lat_us) {
                perror("realloc");
                exit(1);
            }
        }
        res->lat_us[res->n++] = (uint32_t)((t1 - t0) / 1000);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: loadgen PORT CONC SECONDS COUNT [PAYLOAD [GAP_US]]\n");
        return 2;
    }
    port = atoi(argv[1]);
    int conc = atoi(argv[2]);
    seconds = atof(argv[3]);
    count = atol(argv[4]);
    if (argc > 5) {
        for (const char *p = argv[5]; *p && payload_len < sizeof payload; p++) {
            char c = *p;
            if (c == '\\' && p[1]) {
                p++;
                c = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p;
            }
            payload[payload_len++] = c;
        }
    }
    if (argc > 6)
        gap_us = atol(argv[6]);
    struct result *res = calloc((size_t)conc, sizeof *res);
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    uint64_t start = now_ns();
    deadline_ns = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < conc; i++)
        pthread_create(&th[i], NULL, worker, &res[i]);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    double elapsed = (double)(now_ns() - start) / 1e9;
    size_t n = 0;
    long errors = 0;
    for (int i = 0; i < conc; i++) {
        n += res[i].n;
        errors += res[i].errors;
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < conc; i++) {
        memcpy(all + k, res[i].lat_us, res[i].n * sizeof *all);
        k += res[i].n;
    }
    qsort(all, n, sizeof *all, cmp_u32);
    uint32_t p50 = n ? all[(n - 1) * 50 / 100] : 0;
    uint32_t p99 = n ? all[(n - 1) * 99 / 100] : 0;
    uint32_t max = n ? all[n - 1] : 0;
    printf("probes %zu errors %ld seconds %.3f rate %.0f p50_us %u p99_us %u max_us %u\n", n, errors,
           elapsed, (double)n / elapsed, p50, p99, max);
    return 0;
}
