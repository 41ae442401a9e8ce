/* The kernel's floor for a fan-out subscriber: what one read per delivery costs.
 *
 * floor HOST PORT TOPIC N SECONDS MODE [GAP_US] [quickack0]
 *
 * Opens N subscriptions and, for SECONDS (or until SIGTERM / SIGINT), epoll_wait()s
 * and read()s every ready socket once, doing nothing else with the bytes but
 * counting envelopes (a memmem for `{"seq":`, tens of ns next to the read's
 * microseconds): no parsing, no accounting, no timestamps. Its CPU time is the
 * least any client pays per delivery on this machine with the same wire
 * behaviour (one read, hence one ACK, per delivered message when reads keep up).
 *
 * MODE, each sending the request bytes the native engine sends (clients/):
 *   sse | ndjson  GET /stream?topic=T&cursor=0 with the Accept header of
 *                 clients/stream.py, then one endless response;
 *   ws            the upgrade request picows sends (clients/fastws.py), then frames
 *                 (server pings are not answered: runs are far shorter than
 *                 --ping-interval + --ping-timeout);
 *   longpoll      keep-alive GET /poll?topic=T&timeout=30&max=1000&cursor=C, exactly
 *                 clients/longpoll.py's request (LoadSpec defaults), re-sent at once
 *                 when an answer is complete; C is "0" first, then E-<last seq>.
 * GAP_US > 0 sleeps that long before each epoll_wait: the reader then wakes about
 * once per published message, as the engine does (at 200 msg/s and 2,000 us it is
 * still one read per delivery; a gap near the publish interval coalesces reads: a
 * different wire). "quickack0" re-arms TCP_QUICKACK=0 (delayed ACKs) after each
 * read (a different wire too). Those two exist to measure what such changes would
 * save, not to be used by the load generator.
 *
 * Prints "ready" once every subscription is live (streams, ws: the response head
 * was read; long polling: the first poll was sent), then at the end
 * {"reads":R,"bytes":B,"wakeups":W,"deliveries":D,"polls":P,"errors":E}.
 * duplexbench/floorbench.py and tools/floor/run.sh drive it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAT "{\"seq\":"
#define PAT_LEN 7
#define CARRY (PAT_LEN - 1)

enum mode { SSE, NDJSON, WS, LONGPOLL };

/* One subscription. Streams keep only the last bytes read (an envelope's start
 * split across two reads is still counted once); a long poll keeps its answer
 * until it is complete. */
struct conn {
    int fd;
    char carry[CARRY];
    int carry_len;
    char *buf; /* long polling: the answer so far */
    size_t len, cap;
    char cursor[48];
};

static volatile sig_atomic_t stop;
static long deliveries, polls, errors;
static const char *g_host, *g_topic;
static int g_port;

static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Envelopes starting in data[0..n), and one straddling the previous read's tail. */
static long count_envelopes(struct conn *c, const char *data, size_t n) {
    long k = 0;
    if (c->carry_len && n) {
        char joined[2 * CARRY];
        size_t head = n < CARRY ? n : CARRY;
        memcpy(joined, c->carry, c->carry_len);
        memcpy(joined + c->carry_len, data, head);
        if (memmem(joined, c->carry_len + head, PAT, PAT_LEN)) k++;
    }
    const char *p = data, *end = data + n;
    while ((p = memmem(p, end - p, PAT, PAT_LEN)) != NULL) {
        k++;
        p += PAT_LEN;
    }
    if (n >= CARRY) {
        memcpy(c->carry, end - CARRY, CARRY);
        c->carry_len = CARRY;
    } else { /* a tiny read: the tail is the old tail's end plus these bytes */
        char joined[2 * CARRY];
        size_t all = c->carry_len + n, keep = all < CARRY ? all : CARRY;
        memcpy(joined, c->carry, c->carry_len);
        memcpy(joined + c->carry_len, data, n);
        memcpy(c->carry, joined + all - keep, keep);
        c->carry_len = keep;
    }
    return k;
}

static int send_all(int fd, const char *req, size_t n) {
    while (n) {
        ssize_t w = write(fd, req, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return -1;
        }
        req += w;
        n -= w;
    }
    return 0;
}

/* clients/longpoll.py's poll through clients/http11.py: request line, Host, blank line. */
static int send_poll(struct conn *c) {
    char req[512];
    int n = snprintf(req, sizeof req, "GET /poll?topic=%s&timeout=30&max=1000&cursor=%s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n\r\n", g_topic, c->cursor, g_host, g_port);
    polls++;
    return send_all(c->fd, req, n);
}

/* A header's value in head[0..n) (case-insensitive name), copied to out; 0 if absent. */
static int header(const char *head, size_t n, const char *name, char *out, size_t size) {
    size_t k = strlen(name);
    for (const char *p = head; p + k + 2 < head + n; p++) {
        if ((p == head || p[-1] == '\n') && !strncasecmp(p, name, k) && p[k] == ':') {
            const char *v = p + k + 1, *e;
            while (*v == ' ') v++;
            for (e = v; e < head + n && *e != '\r'; e++) {}
            size_t m = (size_t)(e - v) < size - 1 ? (size_t)(e - v) : size - 1;
            memcpy(out, v, m);
            out[m] = 0;
            return 1;
        }
    }
    return 0;
}

/* Long polling: complete answers in c->buf are taken off and the next poll sent.
 * Returns -1 when the connection is unusable. */
static int poll_answers(struct conn *c) {
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return 0;
        size_t head = end + 4 - c->buf, body_len = 0;
        char value[64];
        if (header(c->buf, head, "Content-Length", value, sizeof value)) body_len = strtoul(value, NULL, 10);
        if (c->len < head + body_len) return 0;
        int status = c->len > 12 ? atoi(c->buf + 9) : 0;
        const char *body = c->buf + head;
        char epoch[20] = "";
        header(c->buf, head, "Duplexbench-Epoch", epoch, sizeof epoch);
        if (status == 200) {
            const char *p = body, *last = NULL, *stop_at = body + body_len;
            while ((p = memmem(p, stop_at - p, PAT, PAT_LEN)) != NULL) {
                deliveries++;
                last = p;
                p += PAT_LEN;
            }
            if (last) snprintf(c->cursor, sizeof c->cursor, "%s-%ld", epoch, strtol(last + PAT_LEN, NULL, 10));
        } else if (status == 410) { /* a reset: resume where the server says */
            char *cur = memmem(body, body_len, "\"cursor\":\"", 10);
            char *q = cur ? memchr(cur + 10, '"', body + body_len - (cur + 10)) : NULL;
            if (!q || q - (cur + 10) >= (long)sizeof c->cursor) return -1;
            memcpy(c->cursor, cur + 10, q - (cur + 10));
            c->cursor[q - (cur + 10)] = 0;
            errors++;
        } else if (status != 204) {
            errors++;
            return -1;
        }
        memmove(c->buf, c->buf + head + body_len, c->len - head - body_len);
        c->len -= head + body_len;
        if (send_poll(c)) return -1;
    }
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: floor HOST PORT TOPIC N SECONDS sse|ndjson|ws|longpoll [GAP_US] [quickack0]\n");
        return 2;
    }
    g_host = argv[1];
    g_port = atoi(argv[2]);
    g_topic = argv[3];
    int n = atoi(argv[4]);
    double secs = atof(argv[5]);
    const char *ms = argv[6];
    enum mode mode = !strcmp(ms, "sse") ? SSE : !strcmp(ms, "ndjson") ? NDJSON
                   : !strcmp(ms, "ws") ? WS : !strcmp(ms, "longpoll") ? LONGPOLL : -1;
    if ((int)mode < 0 || n < 1) {
        fprintf(stderr, "floor: bad mode %s or count %d\n", ms, n);
        return 2;
    }
    int gap_us = argc > 7 ? atoi(argv[7]) : 0;
    int quickack0 = argc > 8 && !strcmp(argv[8], "quickack0");
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int ep = epoll_create1(0);
    static char buf[65536];
    long reads = 0, bytes = 0, wakeups = 0;
    struct conn *conns = calloc(n, sizeof *conns);
    for (int i = 0; i < n; i++) {
        struct conn *c = &conns[i];
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons(g_port);
        inet_pton(AF_INET, g_host, &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) {
            perror("floor: connect");
            return 1;
        }
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as every duplexbench socket */
        c->fd = s;
        char req[512];
        int len = 0;
        if (mode == WS)
            len = snprintf(req, sizeof req, "GET /ws?topic=%s&cursor=0 HTTP/1.1\r\nHost: %s:%d\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", g_topic, g_host, g_port);
        else if (mode != LONGPOLL)
            len = snprintf(req, sizeof req, "GET /stream?topic=%s&cursor=0 HTTP/1.1\r\nHost: %s:%d\r\n"
                           "Accept: %s\r\n\r\n", g_topic, g_host, g_port,
                           mode == SSE ? "text/event-stream" : "application/x-ndjson");
        if (mode == LONGPOLL) {
            c->cap = 65536;
            c->buf = malloc(c->cap);
            strcpy(c->cursor, "0");
            if (send_poll(c)) {
                perror("floor: write");
                return 1;
            }
        } else {
            if (send_all(s, req, len)) {
                perror("floor: write");
                return 1;
            }
            /* The subscription is live once the response head is here (the engine waits
             * for it too); what else this read holds is counted like any read. */
            struct timeval tv = {10, 0};
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            ssize_t r = read(s, buf, sizeof buf);
            if (r <= 0 || r < 12 || strncmp(buf + 9, mode == WS ? "101" : "200", 3)) {
                fprintf(stderr, "floor: subscription %d not accepted: %.*s\n", i,
                        r > 0 ? (int)(r < 200 ? r : 200) : 0, buf);
                return 1;
            }
            deliveries += count_envelopes(c, buf, r);
        }
        fcntl(s, F_SETFL, O_NONBLOCK);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
    }
    printf("ready\n");
    fflush(stdout);
    double end = now() + secs;
    struct epoll_event evs[1024];
    while (!stop && now() < end) {
        if (gap_us > 0) usleep(gap_us);
        int k = epoll_wait(ep, evs, 1024, 100);
        wakeups++;
        for (int j = 0; j < k; j++) {
            struct conn *c = evs[j].data.ptr;
            ssize_t r;
            if (mode == LONGPOLL) {
                if (c->cap - c->len < 4096) {
                    c->cap *= 2;
                    c->buf = realloc(c->buf, c->cap);
                }
                r = read(c->fd, c->buf + c->len, c->cap - c->len);
                reads++;
                if (r > 0) {
                    bytes += r;
                    c->len += r;
                    if (poll_answers(c) < 0) r = 0;
                }
            } else {
                r = read(c->fd, buf, sizeof buf);
                reads++;
                if (r > 0) {
                    bytes += r;
                    deliveries += count_envelopes(c, buf, r);
                }
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { /* closed: stop watching */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                errors++;
            }
            if (quickack0) {
                int zero = 0;
                setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
            }
        }
    }
    printf("{\"reads\":%ld,\"bytes\":%ld,\"wakeups\":%ld,\"deliveries\":%ld,\"polls\":%ld,\"errors\":%ld}\n",
           reads, bytes, wakeups, deliveries, polls, errors);
    return 0;
}
