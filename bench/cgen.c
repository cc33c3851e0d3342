/* The clients of bench/fanout.py in C: one epoll loop, a few hundred nanoseconds of work per message.
 *
 *     cc -O2 -o cgen bench/cgen.c   (bench/fanout.py builds it when asked for --loadgen c)
 *     cgen --transport ws|sse --host 127.0.0.1 --port P --clients N [--connect-timeout T] [--max-seconds T]
 *
 * Same command line, stdin/stdout protocol and figures as bench/epollgen.py (see there): clients connect
 * one after another, then one epoll loop reads every ready socket; receipt time is the kernel's receive
 * timestamp (SO_TIMESTAMPNS), latency = receipt - the message's "ts". On stdin "start" opens the measuring
 * window and "stop" prints the result line and ends. The point of a C client: on a 2-core machine the
 * clients' process shares the cores with the daemon, and epollgen.py's ~7 us of CPU per message (70 ms for
 * one broadcast to 10,000 clients) competes with the daemon's own burst; this one needs ~2-3 us, nearly all
 * of it the recvmsg system call. Traffic only to loopback.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LATENCY_CAP 5000000
#define RECEIVE_BYTES 262144

typedef struct {
    int fd;
    long long last_seq;
    char *pending; /* ws: a partial frame; sse: a partial event */
    size_t pending_len;
    char *raw; /* sse: a partial chunk */
    size_t raw_len;
    int chunked;
    int open;
} conn_t;

static struct {
    long long connected, failed, gave_up, disconnected, messages, deltas, snapshots, other;
    long long seq_violations, total_messages, bytes_in, server_close, connect_errors;
    long long max_seq, max_seq_ts;
    int measuring;
    double *latencies;
    size_t n_latencies;
} stats = {.max_seq = -1};

static int is_ws;

static double now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void append(char **buf, size_t *len, const char *data, size_t n) {
    if (n == 0) return;
    *buf = realloc(*buf, *len + n);
    if (*buf == NULL) { perror("realloc"); exit(1); }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void consume(char **buf, size_t *len, size_t n) {
    if (n >= *len) { free(*buf); *buf = NULL; *len = 0; return; }
    memmove(*buf, *buf + n, *len - n);
    *len -= n;
}

/* {"type":"delta","epoch":"...","seq":N,"prev":N,"ts":N,... : kind, seq, ts; 0 if not that shape */
static int parse_header(const char *text, size_t n, int *is_delta, long long *seq, long long *ts) {
    static const char type_key[] = "{\"type\":\"";
    if (n < sizeof(type_key) + 8 || memcmp(text, type_key, sizeof(type_key) - 1) != 0) return 0;
    const char *p = text + sizeof(type_key) - 1, *end = text + (n < 256 ? n : 256);
    if (end - p > 6 && memcmp(p, "delta\"", 6) == 0) *is_delta = 1;
    else if (end - p > 9 && memcmp(p, "snapshot\"", 9) == 0) *is_delta = 0;
    else return 0;
    const char *s = memmem(p, end - p, "\"seq\":", 6), *t = memmem(p, end - p, "\"ts\":", 5);
    if (s == NULL || t == NULL) return 0;
    *seq = strtoll(s + 6, NULL, 10);
    *ts = strtoll(t + 5, NULL, 10);
    return 1;
}

static void message(conn_t *c, const char *text, size_t n, double received) {
    int is_delta;
    long long seq, ts;
    stats.total_messages++;
    if (!parse_header(text, n, &is_delta, &seq, &ts)) { stats.other++; return; }
    if (seq <= c->last_seq && is_delta) stats.seq_violations++;
    c->last_seq = seq;
    if (seq > stats.max_seq) { stats.max_seq = seq; stats.max_seq_ts = ts; }
    if (!stats.measuring) return;
    stats.messages++;
    if (is_delta) {
        stats.deltas++;
        if (stats.n_latencies < LATENCY_CAP) stats.latencies[stats.n_latencies++] = received * 1000.0 - ts;
    } else {
        stats.snapshots++;
    }
}

static void feed_ws(conn_t *c, const char *data, size_t size, double received) {
    if (c->pending_len) {
        append(&c->pending, &c->pending_len, data, size);
        data = c->pending;
        size = c->pending_len;
    }
    size_t pos = 0;
    while (size - pos >= 2) {
        const unsigned char *d = (const unsigned char *)data + pos;
        uint64_t length = d[1] & 0x7F;
        size_t head = 2;
        if (length == 126) {
            if (size - pos < 4) break;
            length = ((uint64_t)d[2] << 8) | d[3];
            head = 4;
        } else if (length == 127) {
            if (size - pos < 10) break;
            length = 0;
            for (int i = 0; i < 8; i++) length = (length << 8) | d[2 + i];
            head = 10;
        }
        if (length > size - pos - head) break;
        int opcode = d[0] & 0x0F;
        if (opcode == 1 || opcode == 2) message(c, data + pos + head, length, received);
        else if (opcode == 8) stats.server_close++;
        pos += head + length;
    }
    if (c->pending_len) consume(&c->pending, &c->pending_len, pos);
    else append(&c->pending, &c->pending_len, data + pos, size - pos);
}

static void feed_sse_events(conn_t *c, const char *data, size_t size, double received) {
    append(&c->pending, &c->pending_len, data, size);
    size_t start = 0;
    for (;;) {
        char *end = memmem(c->pending + start, c->pending_len - start, "\n\n", 2);
        if (end == NULL) break;
        char *line = c->pending + start;
        while (line < end) {
            char *eol = memchr(line, '\n', end - line);
            if (eol == NULL) eol = end;
            if (eol - line >= 5 && memcmp(line, "data:", 5) == 0) {
                char *text = line + 5;
                while (text < eol && *text == ' ') text++;
                message(c, text, eol - text, received);
                break;
            }
            line = eol + 1;
        }
        start = (end - c->pending) + 2;
    }
    consume(&c->pending, &c->pending_len, start);
}

static void feed_sse(conn_t *c, const char *data, size_t size, double received) {
    if (!c->chunked) { feed_sse_events(c, data, size, received); return; }
    append(&c->raw, &c->raw_len, data, size);
    size_t pos = 0;
    for (;;) {
        char *crlf = memmem(c->raw + pos, c->raw_len - pos, "\r\n", 2);
        if (crlf == NULL) break;
        size_t chunk = strtoul(c->raw + pos, NULL, 16), body = (crlf - c->raw) + 2;
        if (c->raw_len < body + chunk + 2) break;
        feed_sse_events(c, c->raw + body, chunk, received);
        pos = body + chunk + 2;
    }
    consume(&c->raw, &c->raw_len, pos);
}

static void feed(conn_t *c, const char *data, size_t size, double received) {
    (is_ws ? feed_ws : feed_sse)(c, data, size, received);
}

static int open_client(conn_t *c, const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval timeout = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { close(fd); return -1; }
    char request[512], key[25];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 22; i++) key[i] = b64[rand() % 64];
    memcpy(key + 22, "==", 3);
    int n = is_ws
        ? snprintf(request, sizeof request,
                   "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, port, key)
        : snprintf(request, sizeof request,
                   "GET /api/pnl/stream HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                   host, port);
    if (send(fd, request, n, MSG_NOSIGNAL) != n) { close(fd); return -1; }
    char buffer[65536];
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t r = recv(fd, buffer + got, sizeof buffer - got - 1, 0);
        if (r <= 0) { close(fd); return -1; }
        got += r;
        buffer[got] = 0;
        end = strstr(buffer, "\r\n\r\n");
        if (end == NULL && got >= sizeof buffer - 1) { close(fd); return -1; }
    }
    const char *expected = is_ws ? "HTTP/1.1 101" : "HTTP/1.1 200";
    if (strncmp(buffer, expected, strlen(expected)) != 0) { close(fd); return -1; }
    *end = 0;
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->last_seq = -1;
    c->open = 1;
    c->chunked = strcasestr(buffer, "transfer-encoding: chunked") != NULL;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    size_t head = (end - buffer) + 4;
    if (got > head) feed(c, buffer + head, got - head, now_wall());
    return 0;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_percentile(const char *name, double q) {
    size_t n = stats.n_latencies;
    if (n == 0) { printf("\"%s\": null", name); return; }
    long index = (long)ceil(q * n) - 1;
    if (index < 0) index = 0;
    if ((size_t)index > n - 1) index = n - 1;
    printf("\"%s\": %.2f", name, stats.latencies[index]);
}

static void print_result(double window_start, long long seq_start, long long ts_start) {
    qsort(stats.latencies, stats.n_latencies, sizeof(double), compare);
    double sum = 0;
    for (size_t i = 0; i < stats.n_latencies; i++) sum += stats.latencies[i];
    printf("{\"event\": \"result\", \"window_s\": %.3f, \"connected\": %lld, \"failed\": %lld, "
           "\"still_open\": %lld, \"disconnected\": %lld, \"messages\": %lld, \"deltas\": %lld, "
           "\"snapshots\": %lld, \"unparsed\": %lld, \"seq_violations\": %lld, \"published_changes\": %lld, "
           "\"published_span_ms\": %lld, \"latency_ms\": {",
           now_wall() - window_start, stats.connected, stats.failed, stats.connected - stats.disconnected,
           stats.disconnected, stats.messages, stats.deltas, stats.snapshots, stats.other, stats.seq_violations,
           stats.max_seq - seq_start, stats.max_seq_ts - ts_start);
    print_percentile("p50", 0.50); printf(", ");
    print_percentile("p90", 0.90); printf(", ");
    print_percentile("p99", 0.99); printf(", ");
    if (stats.n_latencies) {
        printf("\"max\": %.2f, \"mean\": %.2f, ", stats.latencies[stats.n_latencies - 1],
               sum / stats.n_latencies);
    } else {
        printf("\"max\": null, \"mean\": null, ");
    }
    printf("\"samples\": %zu}, \"bytes_in\": %lld, \"errors\": {", stats.n_latencies, stats.bytes_in);
    const char *sep = "";
    if (stats.server_close) { printf("\"server_close\": %lld", stats.server_close); sep = ", "; }
    if (stats.connect_errors) printf("%s\"connect:OSError\": %lld", sep, stats.connect_errors);
    printf("}}\n");
    fflush(stdout);
}

static double arrival(struct msghdr *msg, double fallback) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            return ts.tv_sec + ts.tv_nsec / 1e9;
        }
    }
    return fallback;
}

static void serve(conn_t *conns, int n, double max_seconds) {
    int poller = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
    epoll_ctl(poller, EPOLL_CTL_ADD, STDIN_FILENO, &event);
    for (int i = 0; i < n; i++) {
        event.data.u64 = i;
        epoll_ctl(poller, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    static char buffer[RECEIVE_BYTES];
    char control[CMSG_SPACE(sizeof(struct timespec)) * 2];
    struct epoll_event ready[1024];
    double deadline = now_mono() + max_seconds, window_start = 0;
    long long seq_start = 0, ts_start = 0;
    while (now_mono() < deadline) {
        int count = epoll_wait(poller, ready, 1024, 1000);
        double received = now_wall();
        for (int k = 0; k < count; k++) {
            if (ready[k].data.u64 == (uint64_t)-1) {
                char word[1024];
                ssize_t r = read(STDIN_FILENO, word, sizeof word - 1);
                word[r > 0 ? r : 0] = 0;
                if (strstr(word, "start")) {
                    stats.measuring = 1;
                    window_start = now_wall();
                    seq_start = stats.max_seq;
                    ts_start = stats.max_seq_ts;
                }
                if (strstr(word, "stop") || r <= 0) {
                    stats.measuring = 0;
                    print_result(window_start, seq_start, ts_start);
                    return;
                }
                continue;
            }
            conn_t *c = &conns[ready[k].data.u64];
            struct iovec iov = {.iov_base = buffer, .iov_len = sizeof buffer};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                 .msg_controllen = sizeof control};
            ssize_t r = recvmsg(c->fd, &msg, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) {
                stats.disconnected++;
                epoll_ctl(poller, EPOLL_CTL_DEL, c->fd, NULL);
                c->open = 0;
                continue;
            }
            stats.bytes_in += r;
            feed(c, buffer, r, arrival(&msg, received));
        }
    }
}

int main(int argc, char **argv) {
    const char *transport = NULL, *host = "127.0.0.1";
    int port = 0, clients = 0;
    double connect_timeout = 120, max_seconds = 600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--transport")) transport = argv[i + 1];
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--connect-timeout")) connect_timeout = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (transport == NULL || port <= 0 || clients <= 0 || (strcmp(transport, "ws") && strcmp(transport, "sse"))) {
        fprintf(stderr, "usage: cgen --transport ws|sse --host H --port P --clients N\n");
        return 2;
    }
    if (strcmp(host, "127.0.0.1") && strcmp(host, "localhost")) {
        fprintf(stderr, "traffic only to loopback (127.0.0.1)\n");
        return 2;
    }
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    is_ws = !strcmp(transport, "ws");
    srand(getpid());
    stats.latencies = malloc(sizeof(double) * LATENCY_CAP);
    conn_t *conns = calloc(clients, sizeof(conn_t));
    if (stats.latencies == NULL || conns == NULL) { perror("malloc"); return 1; }
    double started = now_mono();
    int n = 0;
    char timeline[65536] = "";
    size_t timeline_len = 0;
    int seconds = 0;
    for (int i = 0; i < clients; i++) {
        if (now_mono() - started > connect_timeout) {
            stats.gave_up = clients - stats.connected - stats.failed;
            break;
        }
        if (open_client(&conns[n], host, port) < 0) {
            stats.failed++;
            stats.connect_errors++;
            continue;
        }
        n++;
        stats.connected++;
        while (seconds < now_mono() - started && timeline_len < sizeof timeline - 32) {
            timeline_len += snprintf(timeline + timeline_len, sizeof timeline - timeline_len, "%s%lld",
                                     seconds ? ", " : "", stats.connected);
            seconds++;
        }
    }
    printf("{\"event\": \"connected\", \"connected\": %lld, \"failed\": %lld, \"gave_up\": %lld, "
           "\"connect_s\": %.3f, \"connected_by_second\": [%s], \"errors\": {",
           stats.connected, stats.failed, stats.gave_up, now_mono() - started, timeline);
    if (stats.connect_errors) printf("\"connect:OSError\": %lld", stats.connect_errors);
    printf("}}\n");
    fflush(stdout);
    serve(conns, n, max_seconds);
    static const unsigned char close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
    for (int i = 0; i < n; i++) {
        if (is_ws && conns[i].open) send(conns[i].fd, close_frame, sizeof close_frame, MSG_NOSIGNAL);
        close(conns[i].fd);
    }
    return 0;
}
