/* The kernel's floor for a fan-out subscriber: what one read per delivery costs.
 *
 * floor HOST PORT TOPIC N SECONDS MODE [GAP_US] [quickack0]
 *
 * Opens N subscriptions (MODE sse | ndjson: GET /stream; ws: GET /ws upgrade),
 * then, for SECONDS, epoll_wait()s and read()s every ready socket once, doing
 * nothing else with the bytes: no parsing, no accounting, no timestamps. Its CPU
 * time is the least any client pays per delivery on this machine with the same
 * wire behaviour (one read, hence one ACK, per delivered message when reads keep
 * up). GAP_US > 0 sleeps that long before each epoll_wait (reads coalesce: fewer
 * reads and ACKs, a different wire); "quickack0" re-arms TCP_QUICKACK=0 (delayed
 * ACKs) after each read (a different wire too). Both exist to measure what those
 * changes would save, not to be used by the load generator.
 * Prints {"reads":R,"bytes":B,"wakeups":W} at the end. tools/floor/run.sh drives it.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: floor HOST PORT TOPIC N SECONDS sse|ndjson|ws [GAP_US] [quickack0]\n");
        return 2;
    }
    const char *host = argv[1], *topic = argv[3], *mode = argv[6];
    int port = atoi(argv[2]), n = atoi(argv[4]);
    double secs = atof(argv[5]);
    int gap_us = argc > 7 ? atoi(argv[7]) : 0;
    int quickack0 = argc > 8 && !strcmp(argv[8], "quickack0");
    int ep = epoll_create1(0);
    static char buf[65536];
    long reads = 0, bytes = 0, wakeups = 0;
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        inet_pton(AF_INET, host, &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) {
            perror("connect");
            return 1;
        }
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char req[512];
        if (!strcmp(mode, "ws"))
            snprintf(req, sizeof req, "GET /ws?topic=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", topic, host, port);
        else
            snprintf(req, sizeof req, "GET /stream?topic=%s HTTP/1.1\r\nHost: %s:%d\r\nAccept: %s\r\n\r\n",
                     topic, host, port, !strcmp(mode, "sse") ? "text/event-stream" : "application/x-ndjson");
        if (write(s, req, strlen(req)) < 0) {
            perror("write");
            return 1;
        }
        fcntl(s, F_SETFL, O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
    }
    printf("ready\n");
    fflush(stdout);
    double end = now() + secs;
    struct epoll_event evs[1024];
    while (now() < end) {
        if (gap_us > 0) usleep(gap_us);
        int k = epoll_wait(ep, evs, 1024, 100);
        wakeups++;
        for (int j = 0; j < k; j++) {
            ssize_t r = read(evs[j].data.fd, buf, sizeof buf);
            reads++;
            if (r > 0) bytes += r;
            if (quickack0) {
                int zero = 0;
                setsockopt(evs[j].data.fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
            }
        }
    }
    printf("{\"reads\":%ld,\"bytes\":%ld,\"wakeups\":%ld}\n", reads, bytes, wakeups);
    return 0;
}
