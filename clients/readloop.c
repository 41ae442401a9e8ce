/* The load generator's receive path in C (clients/reader.py): no Python per read.
 *
 * Why: at make bench's 50-subscriber point the load generator reads once per delivery; after
 * the kernel's share (the read, its ACK, the server's input of that ACK) the Python per read
 * was the largest part left above the floor reader (tools/floor, docs/engine-cost.md).
 *
 * read_ready(epfd, table, linger_ms, hold_ns) -> (wakeups, reads, later): what
 *   FastReader._on_ready does, with the same wire behaviour: every ready socket read once as
 *   soon as epoll says so, the receive time (CLOCK_MONOTONIC, time.monotonic_ns's clock) taken
 *   right after the read, bytes and time kept in the sink's store, then a linger for the
 *   rest of a fan-out burst. table: {fd: (sink, store, None)}, the reads kept in a ReadStore
 *   (clients/readstore.c, which knows its limit) for the parse later; immediate sinks
 *   (sink, None, replay), called at once; a long poll (sink, None, read_now, PollState)
 *   whose common answer is answered here (poll_answer). What is not the common case goes back
 *   to Python in order, at the end of its batch (no linger then): later = [(kind, sink, data,
 *   recv_ns)], kind FULL (a sink at its limit), END (end or error: handed back), BROKEN (a
 *   replay raised data).
 * ws_walk(buf, pos): WebSocket frame headers (clients/fastws.py walk_frames_py in C).
 * PollState: a long poll's state for poll_answer (clients/longpoll.py PollSink).
 */
#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "readstore.h"

#define READ_SIZE 65536   /* as clients/reader.py's READ_SIZE and tools/floor/floor.c */
#define MAX_EVENTS 1024

enum { LATER_BROKEN = 0, LATER_FULL = 1, LATER_END = 2 };

static char buffer[READ_SIZE];

static long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Appends (kind, sink, data, recv_ns) to later; data may be NULL (None). 0 or -1. */
static int defer(PyObject *later, int kind, PyObject *sink, PyObject *data, long long t) {
    PyObject *item = Py_BuildValue("(iOOL)", kind, sink, data ? data : Py_None, t);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(later, item);
    Py_DECREF(item);
    return rc;
}

/* A keep-alive long poll answered in C (clients/longpoll.py's PollSink): its state, read
 * and reset by the sink when it settles. Counts are C integers (no Python object per poll). */
typedef struct {
    PyObject_HEAD
    char on;              /* the next answer may be answered here (a response boundary) */
    PyObject *head;       /* bytes: the poll request up to the cursor's seq */
    PyObject *tail;       /* bytes: the rest of the request */
    PyObject *transport;  /* what writes what the socket did not take */
    PyObject *store;      /* ReadStore: the bodies answered and their receive times, for the
                           * RawLog (clients/readstore.c: no Python object per answer) */
    long long bytes_down, bytes_up, requests, cursor;
} PollState;

static int PollState_init(PollState *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"head", "tail", "transport", "store", NULL};
    PyObject *head, *tail, *transport, *store;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "SSOO!", names, &head, &tail, &transport,
                                     &ReadStoreType, &store))
        return -1;
    Py_XSETREF(self->head, Py_NewRef(head));
    Py_XSETREF(self->tail, Py_NewRef(tail));
    Py_XSETREF(self->transport, Py_NewRef(transport));
    Py_XSETREF(self->store, Py_NewRef(store));
    self->on = 1;
    self->bytes_down = self->bytes_up = self->requests = self->cursor = 0;
    return 0;
}

static int PollState_traverse(PollState *self, visitproc visit, void *arg) {
    Py_VISIT(self->head);
    Py_VISIT(self->tail);
    Py_VISIT(self->transport);
    Py_VISIT(self->store);
    return 0;
}

static int PollState_clear(PollState *self) {
    Py_CLEAR(self->head);
    Py_CLEAR(self->tail);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->store);
    return 0;
}

static void PollState_dealloc(PollState *self) {
    PyObject_GC_UnTrack(self);
    PollState_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef PollState_members[] = {
    {"on", T_BOOL, offsetof(PollState, on), 0, "the next answer may be answered in C"},
    {"head", T_OBJECT_EX, offsetof(PollState, head), 0, "the request up to the seq"},
    {"bytes_down", T_LONGLONG, offsetof(PollState, bytes_down), 0, "response bytes read"},
    {"bytes_up", T_LONGLONG, offsetof(PollState, bytes_up), 0, "request bytes written"},
    {"requests", T_LONGLONG, offsetof(PollState, requests), 0, "polls written"},
    {"cursor", T_LONGLONG, offsetof(PollState, cursor), 0, "the last seq answered"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject PollStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "clients.readloop.PollState",
    .tp_doc = "PollState(head, tail, transport, store): a long poll answered in C",
    .tp_basicsize = sizeof(PollState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)PollState_init,
    .tp_dealloc = (destructor)PollState_dealloc,
    .tp_traverse = (traverseproc)PollState_traverse,
    .tp_clear = (inquiry)PollState_clear,
    .tp_members = PollState_members,
};

/* Decimal digits of value (>= 0) into out; their count. */
static int format_seq(long long value, char *out) {
    char digits[24];
    int k = 0;
    do {
        digits[k++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (int i = 0; i < k; i++)
        out[i] = digits[k - 1 - i];
    return k;
}

/* Whether [start, end) holds word (lower case), in any case. */
static int holds_word(const char *start, const char *end, const char *word) {
    size_t k = strlen(word);
    for (; (size_t)(end - start) >= k; start++)
        if (strncasecmp(start, word, k) == 0)
            return 1;
    return 0;
}

/* Whether the header line [line, eol) is named name (lower case, with its colon). */
static int header_is(const char *line, const char *eol, const char *name) {
    size_t k = strlen(name);
    return (size_t)(eol - line) >= k && (line[0] | 0x20) == name[0] &&
           strncasecmp(line, name, k) == 0;
}

/* The common answer of a long poll, done here as _Repoll.on_message_complete does it:
 * one whole "HTTP/1.1 200" response in this read, with a Content-Length, kept alive,
 * whose body holds envelopes: the next poll (head, the last seq, tail) is written now,
 * the body and its receive time kept (the sink's ReadStore) for the RawLog, the counts
 * added up. Anything else (another status, chunked, Connection: close, a response split
 * over reads, no envelope, the sink not at a response boundary: POLL_ON false) is left to
 * httptools: 0.
 * Returns 1 (answered), 2 (answered, the sink holds its limit of bodies), 0, -1 (error). */
static int poll_answer(int fd, PyObject *entry_state, const char *data, Py_ssize_t n,
                       long long t) {
    static const char status_ok[] = "HTTP/1.1 200 ", seq_key[] = "{\"seq\":";
    if (!PyObject_TypeCheck(entry_state, &PollStateType))
        return 0;
    PollState *state = (PollState *)entry_state;
    if (!state->on)
        return 0;
    if (n < (Py_ssize_t)sizeof status_ok - 1 || memcmp(data, status_ok, sizeof status_ok - 1))
        return 0;
    const char *blank = memmem(data, n, "\r\n\r\n", 4);
    if (blank == NULL)
        return 0;
    Py_ssize_t head_len = blank - data + 4;
    long long content_length = -1;
    const char *line = memchr(data, '\n', head_len);
    for (line = line + 1; line < blank + 2;) {
        const char *eol = memchr(line, '\r', blank + 2 - line);
        if (eol == NULL)
            return 0;
        if (header_is(line, eol, "content-length:")) {
            const char *p = line + 15;
            while (p < eol && (*p == ' ' || *p == '\t'))
                p++;
            if (p == eol || content_length >= 0)
                return 0;
            for (content_length = 0; p < eol && *p >= '0' && *p <= '9'; p++)
                if ((content_length = content_length * 10 + (*p - '0')) > READ_SIZE)
                    return 0;
            while (p < eol && (*p == ' ' || *p == '\t'))
                p++;
            if (p != eol)
                return 0;
        } else if (header_is(line, eol, "transfer-encoding:") ||
                   (header_is(line, eol, "connection:") && holds_word(line + 11, eol, "close"))) {
            return 0; /* chunked, or the server closes: httptools and the poll task */
        }
        line = eol + 2;
    }
    if (content_length < 0 || head_len + content_length != n)
        return 0;
    const char *body = data + head_len, *last = NULL;
    Py_ssize_t body_len = (Py_ssize_t)content_length, key_len = sizeof seq_key - 1;
    for (const char *p = body + body_len - key_len; p >= body && last == NULL; p--)
        if (*p == '{' && memcmp(p, seq_key, key_len) == 0)
            last = p; /* the last envelope's: bodies end with it */
    if (last == NULL)
        return 0;
    long long seq = 0;
    const char *p = last + key_len;
    const char *digits = p;
    for (; p < body + body_len && *p >= '0' && *p <= '9' && p - digits < 18; p++)
        seq = seq * 10 + (*p - '0');
    if (p == digits || p >= body + body_len || *p != ',')
        return 0;
    /* The next poll: the same bytes _Repoll writes (head, seq, tail). */
    PyObject *head = state->head, *tail = state->tail;
    if (!PyBytes_Check(head) || !PyBytes_Check(tail))
        return 0;
    char request[4096];
    Py_ssize_t head_len2 = PyBytes_GET_SIZE(head), tail_len = PyBytes_GET_SIZE(tail);
    if (head_len2 + 24 + tail_len > (Py_ssize_t)sizeof request)
        return 0;
    memcpy(request, PyBytes_AS_STRING(head), head_len2);
    Py_ssize_t request_len = head_len2 + format_seq(seq, request + head_len2);
    memcpy(request + request_len, PyBytes_AS_STRING(tail), tail_len);
    request_len += tail_len;
    /* The transport's buffer is empty (one request in flight, and it was answered): the
     * request goes straight to the socket; what the socket does not take, the transport
     * writes (never seen with ~100 bytes and an idle connection). An error: httptools'
     * path, whose write through the transport meets it as before. */
    ssize_t written = write(fd, request, request_len);
    if (written < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return 0;
    if (written < 0)
        written = 0;
    if (written < request_len) {
        PyObject *done = PyObject_CallMethod(state->transport, "write", "y#",
                                             request + written, request_len - written);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    int full = readstore_append((ReadStore *)state->store, body, body_len, t);
    if (full < 0)
        return -1;
    state->cursor = seq;
    state->bytes_down += n;
    state->bytes_up += request_len;
    state->requests += 1;
    return full ? 2 : 1;
}

/* The table's keys, made once per descriptor (Python caches only small ints). */
#define KEY_CACHE 65536
static PyObject *fd_keys[KEY_CACHE];

static PyObject *fd_key(int fd) {
    if (fd < 0 || fd >= KEY_CACHE)
        return PyLong_FromLong(fd);
    if (fd_keys[fd] == NULL && (fd_keys[fd] = PyLong_FromLong(fd)) == NULL)
        return NULL;
    Py_INCREF(fd_keys[fd]);
    return fd_keys[fd];
}

/* One socket's read. Returns 1 when something was deferred, 0 when not, -1 on error. */
static int read_one(int fd, PyObject *table, PyObject *later) {
    PyObject *key = fd_key(fd);
    if (key == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(table, key); /* borrowed */
    Py_DECREF(key);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : 0; /* forgotten since epoll reported it */
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 3 || PyTuple_GET_SIZE(entry) > 4) {
        PyErr_SetString(PyExc_TypeError, "a table entry is (sink, store, replay[, poll])");
        return -1;
    }
    PyObject *sink = PyTuple_GET_ITEM(entry, 0), *store = PyTuple_GET_ITEM(entry, 1);
    PyObject *replay = PyTuple_GET_ITEM(entry, 2);
    if (store != Py_None && !PyObject_TypeCheck(store, &ReadStoreType)) {
        PyErr_SetString(PyExc_TypeError, "a sink's reads are kept in a ReadStore");
        return -1;
    }
    ssize_t n = read(fd, buffer, READ_SIZE);
    long long t = monotonic_ns();
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return defer(later, LATER_END, sink, NULL, t) < 0 ? -1 : 1; /* reset: handed back */
    }
    if (n == 0) /* the peer closed: the transport's own path takes it from here */
        return defer(later, LATER_END, sink, NULL, t) < 0 ? -1 : 1;
    if (store != Py_None) { /* kept for the parse later: no Python object per read */
        int full = readstore_append((ReadStore *)store, buffer, n, t);
        if (full < 0)
            return -1;
        return full ? (defer(later, LATER_FULL, sink, NULL, t) < 0 ? -1 : 1) : 0;
    }
    if (PyTuple_GET_SIZE(entry) == 4) { /* a long poll's answer */
        int answered = poll_answer(fd, PyTuple_GET_ITEM(entry, 3), buffer, n, t);
        if (answered == 2)
            return defer(later, LATER_FULL, sink, NULL, t) < 0 ? -1 : 1;
        if (answered != 0)
            return answered < 0 ? -1 : 0;
    }
    PyObject *data = PyBytes_FromStringAndSize(buffer, n);
    if (data == NULL)
        return -1;
    PyObject *stamp = PyLong_FromLongLong(t);
    if (stamp == NULL) {
        Py_DECREF(data);
        return -1;
    }
    /* immediate: parsed now by its replay (a long poll re-polls) */
    PyObject *done = PyObject_CallFunctionObjArgs(replay, data, stamp, NULL);
    Py_DECREF(data);
    Py_DECREF(stamp);
    if (done != NULL) {
        Py_DECREF(done);
        return 0;
    }
    /* A bug in a parser callback: reported by Python (FastReader._broken), not the
     * loop's end. The exception travels as the item's data. */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    int rc = defer(later, LATER_BROKEN, sink, value, t);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return rc < 0 ? -1 : 1;
}

static PyObject *read_ready(PyObject *Py_UNUSED(module), PyObject *args) {
    int epfd, linger_ms;
    long long hold_ns;
    PyObject *table;
    if (!PyArg_ParseTuple(args, "iO!iL", &epfd, &PyDict_Type, &table, &linger_ms, &hold_ns))
        return NULL;
    struct epoll_event events[MAX_EVENTS];
    long wakeups = 0, reads = 0;
    PyObject *later = PyList_New(0);
    if (later == NULL)
        return NULL;
    long long until = monotonic_ns() + hold_ns;
    int ready = epoll_wait(epfd, events, MAX_EVENTS, 0);
    while (ready > 0) {
        int deferred = 0;
        wakeups += 1;
        reads += ready;
        for (int i = 0; i < ready; i++) {
            int rc = read_one(events[i].data.fd, table, later);
            if (rc < 0) {
                Py_DECREF(later);
                return NULL;
            }
            deferred |= rc;
        }
        /* Python's turn: what was deferred cannot wait for the linger (a long poll
         * re-polls from its answer), and the event loop's when the hold is over. */
        if (deferred || !linger_ms || monotonic_ns() >= until)
            break;
        /* The GIL is kept: the wait is at most linger_ms, the load generator's other
         * threads (if any) wait no longer than Python's own switch interval, and taking
         * and dropping it cost ~2.5 % of a long poll's CPU here. */
        ready = epoll_wait(epfd, events, MAX_EVENTS, linger_ms);
    }
    return Py_BuildValue("(llN)", wakeups, reads, later);
}

/* ws_walk(buf, pos) -> (pos, head_at, controls): the WebSocket frame headers of buf from
 * pos (a frame boundary), as clients/fastws.py's walk_frames does in Python: pos after the
 * last whole frame (beyond len(buf) when a data frame goes on in later reads); head_at the
 * start of an incomplete header or control frame (-1: none), to be carried over; controls
 * [(opcode, start, end)] of the whole control frames (ping, pong, close), payload bounds.
 * Why in C: at 50 subscribers it walks every delivered frame, 10,000 a second. */
static PyObject *ws_walk(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "y*n", &view, &pos))
        return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t n = view.len, head_at = -1;
    PyObject *controls = PyList_New(0);
    if (controls == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    while (pos < n) {
        if (pos + 2 > n) {
            head_at = pos;
            break;
        }
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        unsigned long long length = b1 & 0x7F;
        Py_ssize_t start = pos + 2;
        if (length == 126) {
            start = pos + 4;
            length = start <= n ? ((unsigned long long)buf[pos + 2] << 8) | buf[pos + 3] : 0;
        } else if (length == 127) {
            start = pos + 10;
            length = 0;
            if (start <= n)
                for (int i = 2; i < 10; i++)
                    length = (length << 8) | buf[pos + i];
        }
        if (b1 & 0x80) /* masked (servers do not mask): the key is part of the header */
            start += 4;
        if (length > (unsigned long long)(PY_SSIZE_T_MAX - start)) {
            Py_DECREF(controls);
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_ValueError, "a WebSocket frame longer than memory");
            return NULL;
        }
        Py_ssize_t end = start + (Py_ssize_t)length;
        if (b0 & 0x08) { /* a control frame: ping, pong, close (never fragmented) */
            if (end > n) { /* wait for the whole frame */
                head_at = pos;
                break;
            }
            PyObject *item = Py_BuildValue("(inn)", b0 & 0x0F, start, end);
            if (item == NULL || PyList_Append(controls, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(controls);
                PyBuffer_Release(&view);
                return NULL;
            }
            Py_DECREF(item);
        } else if (start > n) { /* a data frame's header is incomplete */
            head_at = pos;
            break;
        }
        pos = end;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nnN)", pos, head_at, controls);
}

static PyMethodDef methods[] = {
    {"ws_walk", ws_walk, METH_VARARGS,
     "ws_walk(buf, pos) -> (pos, head_at, controls): WebSocket frame headers from pos"},
    {"read_ready", read_ready, METH_VARARGS,
     "read_ready(epfd, table, linger_ms, hold_ns) -> (wakeups, reads, later)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "clients.readloop",
    "The FastReader's read loop without Python per read (clients/reader.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_readloop(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "READ_SIZE", READ_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "LATER_BROKEN", LATER_BROKEN) < 0 ||
        PyModule_AddIntConstant(m, "LATER_FULL", LATER_FULL) < 0 ||
        PyModule_AddIntConstant(m, "LATER_END", LATER_END) < 0 ||
        PyModule_AddType(m, &PollStateType) < 0 || PyModule_AddType(m, &ReadStoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
