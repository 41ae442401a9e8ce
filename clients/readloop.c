/* The FastReader's inner loop in C (clients/reader.py): no Python per read.
 *
 * Why: at make bench's 50-subscriber point the load generator reads once per delivery,
 * and after the kernel's share (the read, its ACK, the server's input of that ACK) the
 * Python of a read loop (the table lookup, os.readv, the clock, a bytes object, two list
 * appends: ~2 us a read here) was the largest part left above the floor reader
 * (tools/floor/floor.c, docs/engine-cost.md). This does what FastReader._on_ready does,
 * with the same wire behaviour: every ready socket read once as soon as epoll says it is
 * ready, the receive time taken right after the read (CLOCK_MONOTONIC, the clock of
 * time.monotonic_ns), the bytes and that time appended to the sink's lists; then it
 * lingers for the rest of a fan-out burst as the Python loop does.
 *
 A read of an immediate sink (a long poll's answer) is parsed at once by the sink's
 * replay, called from here as the Python loop calls it (it writes the next poll). What is
 * not the common case goes back to Python, in order, at the end of the batch it was found
 * in (the loop then returns without lingering): a sink at its read limit (drained), a
 * socket that found its end or an error (handed back to its transport), and an exception
 * raised by a replay (reported, and the socket handed back).
 *
 * read_ready(epfd, table, linger_ms, hold_ns) -> (wakeups, reads, later)
 *   table: {fd: (sink, chunks, times, limit)}; immediate sinks: (sink, None, replay, 0)
 *   later: [(kind, sink, data, recv_ns)], kind FULL (limit), END, BROKEN (data: the exception).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

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

/* One socket's read. Returns 1 when something was deferred, 0 when not, -1 on error. */
static int read_one(int fd, PyObject *table, PyObject *later) {
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(table, key); /* borrowed */
    Py_DECREF(key);
    if (entry == NULL)
        return PyErr_Occurred() ? -1 : 0; /* forgotten since epoll reported it */
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4) {
        PyErr_SetString(PyExc_TypeError, "a table entry is (sink, chunks, times, limit)");
        return -1;
    }
    PyObject *sink = PyTuple_GET_ITEM(entry, 0), *chunks = PyTuple_GET_ITEM(entry, 1);
    PyObject *times = PyTuple_GET_ITEM(entry, 2);
    Py_ssize_t limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 3));
    if (limit == -1 && PyErr_Occurred())
        return -1;
    if (chunks != Py_None && (!PyList_Check(chunks) || !PyList_Check(times))) {
        PyErr_SetString(PyExc_TypeError, "a sink's chunks and times are lists");
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
    PyObject *data = PyBytes_FromStringAndSize(buffer, n);
    if (data == NULL)
        return -1;
    PyObject *stamp = PyLong_FromLongLong(t);
    if (stamp == NULL) {
        Py_DECREF(data);
        return -1;
    }
    if (chunks == Py_None) { /* immediate: parsed now, times is its replay (a long poll re-polls) */
        PyObject *done = PyObject_CallFunctionObjArgs(times, data, stamp, NULL);
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
    int rc = PyList_Append(chunks, data);
    Py_DECREF(data);
    if (rc == 0)
        rc = PyList_Append(times, stamp);
    Py_DECREF(stamp);
    if (rc < 0)
        return -1;
    if (PyList_GET_SIZE(chunks) >= limit)
        return defer(later, LATER_FULL, sink, NULL, t) < 0 ? -1 : 1;
    return 0;
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
        Py_BEGIN_ALLOW_THREADS
        ready = epoll_wait(epfd, events, MAX_EVENTS, linger_ms);
        Py_END_ALLOW_THREADS
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
        PyModule_AddIntConstant(m, "LATER_END", LATER_END) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
