/* Helpers for tests/bench/run.
 *
 * ceiling PORT        the ceiling: the least a TCP agent can do per probe on
 *                     this machine. One thread, blocking: accept, write a fixed
 *                     line, close (3 system calls a probe).
 * ceiling PORT read   the same, but reads once (the payload) before writing
 *                     (4 a probe). Without that read, closing with the payload
 *                     unread sends RST and the client may lose the line.
 * ceiling PORT hang   a health URL that hangs: accepts and never answers,
 *                     holding up to 1000 connections (the oldest is closed).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ceiling PORT [read|hang]\n");
        return 2;
    }
    const char *mode = argc == 3 ? argv[2] : "";
    int do_read = strcmp(mode, "read") == 0, hang = strcmp(mode, "hang") == 0;
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 128) < 0) {
        perror("ceiling: bind/listen");
        return 111;
    }
    static const char line[] = "up ready 77% maxconn:300\n";
    static int held[1000];
    unsigned n = 0;
    char buf[512];
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        if (hang) {
            if (n >= 1000)
                close(held[n % 1000]);
            held[n++ % 1000] = c;
            continue;
        }
        if (do_read)
            (void)read(c, buf, sizeof buf);
        (void)write(c, line, sizeof line - 1);
        close(c);
    }
}
