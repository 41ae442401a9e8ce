/* ReadStore: a taken connection's reads, kept by the C read loop until they are parsed.
 *
 * Why: the loop (clients/readloop.c) used to keep each read as a bytes object and its receive
 * time as an int, appended to two lists: per delivery two Python objects, two list appends and,
 * as the lists grow through the measurement window, page faults of pymalloc's new pools (4.5 %
 * of the load generator's CPU under perf at make bench's 50-subscriber point; the floor reader
 * has none of it). Here the bytes go back to back into one buffer, the end offsets and times
 * into two C arrays, all allocated and touched when the connection is taken (before the
 * warm-up): per read one memcpy of the read, no object, no fault. The Python side sees the
 * same reads, in order, when they are parsed (take()) or looked at (joined()).
 *
 * ReadStore(limit, bytes_per_read=160): room for limit reads of ~bytes_per_read bytes (a read
 * that does not fit grows the buffer: nothing is ever dropped).
 *   len(store)           reads kept
 *   store.append(b, t)   keep one read (the Python loop's path); True at the limit
 *   store.take()         ([bytes, ...], [t, ...]) of every read kept, which are then dropped
 *   store.joined(start)  the bytes of reads start.. as one bytes object (nothing dropped)
 */
#include "readstore.h"

#include <string.h>

#define PAGE 4096

/* Writes one byte per page: the pages are the process's now, not at the first read. */
static void touch(void *memory, size_t size) {
    volatile char *p = memory;
    for (size_t i = 0; i < size; i += PAGE)
        p[i] = 0;
}

static int grow_data(ReadStore *self, Py_ssize_t need) {
    Py_ssize_t capacity = self->capacity ? self->capacity : PAGE;
    while (capacity - self->used < need)
        capacity *= 2;
    char *data = PyMem_RawRealloc(self->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->data = data;
    self->capacity = capacity;
    return 0;
}

static int grow_slots(ReadStore *self) {
    Py_ssize_t slots = self->slots ? self->slots * 2 : 64;
    Py_ssize_t *ends = PyMem_RawRealloc(self->ends, (size_t)slots * sizeof *ends);
    if (ends == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->ends = ends;
    long long *times = PyMem_RawRealloc(self->times, (size_t)slots * sizeof *times);
    if (times == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->times = times;
    self->slots = slots;
    return 0;
}

int readstore_append(ReadStore *self, const char *bytes, Py_ssize_t n, long long t) {
    if (self->count == self->slots && grow_slots(self) < 0)
        return -1;
    if (self->capacity - self->used < n && grow_data(self, n) < 0)
        return -1;
    memcpy(self->data + self->used, bytes, (size_t)n);
    self->used += n;
    self->ends[self->count] = self->used;
    self->times[self->count] = t;
    self->count += 1;
    return self->count >= self->limit;
}

static int ReadStore_init(ReadStore *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"limit", "bytes_per_read", NULL};
    Py_ssize_t limit, per_read = 160;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|n", names, &limit, &per_read))
        return -1;
    if (limit < 1 || per_read < 1 || limit > PY_SSIZE_T_MAX / 16 / per_read) {
        PyErr_SetString(PyExc_ValueError, "ReadStore: limit and bytes_per_read must be >= 1");
        return -1;
    }
    PyMem_RawFree(self->data);
    PyMem_RawFree(self->ends);
    PyMem_RawFree(self->times);
    self->data = PyMem_RawMalloc((size_t)(limit * per_read));
    self->ends = PyMem_RawMalloc((size_t)limit * sizeof *self->ends);
    self->times = PyMem_RawMalloc((size_t)limit * sizeof *self->times);
    if (self->data == NULL || self->ends == NULL || self->times == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->capacity = limit * per_read;
    self->slots = self->limit = limit;
    self->used = self->count = 0;
    touch(self->data, (size_t)self->capacity);
    touch(self->ends, (size_t)limit * sizeof *self->ends);
    touch(self->times, (size_t)limit * sizeof *self->times);
    return 0;
}

static void ReadStore_dealloc(ReadStore *self) {
    PyMem_RawFree(self->data);
    PyMem_RawFree(self->ends);
    PyMem_RawFree(self->times);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t ReadStore_len(ReadStore *self) {
    return self->count;
}

static PyObject *ReadStore_append(ReadStore *self, PyObject *args) {
    Py_buffer view;
    long long t;
    if (!PyArg_ParseTuple(args, "y*L", &view, &t))
        return NULL;
    int full = readstore_append(self, view.buf, view.len, t);
    PyBuffer_Release(&view);
    if (full < 0)
        return NULL;
    return PyBool_FromLong(full);
}

static PyObject *ReadStore_take(ReadStore *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *chunks = PyList_New(self->count), *times = PyList_New(self->count);
    if (chunks == NULL || times == NULL)
        goto fail;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        PyObject *data = PyBytes_FromStringAndSize(self->data + start, self->ends[i] - start);
        PyObject *stamp = data ? PyLong_FromLongLong(self->times[i]) : NULL;
        if (stamp == NULL) {
            Py_XDECREF(data);
            goto fail;
        }
        PyList_SET_ITEM(chunks, i, data);
        PyList_SET_ITEM(times, i, stamp);
        start = self->ends[i];
    }
    self->count = self->used = 0;
    return Py_BuildValue("(NN)", chunks, times);
fail:
    Py_XDECREF(chunks);
    Py_XDECREF(times);
    return NULL;
}

static PyObject *ReadStore_joined(ReadStore *self, PyObject *args) {
    Py_ssize_t start = 0;
    if (!PyArg_ParseTuple(args, "|n", &start))
        return NULL;
    if (start < 0 || start > self->count) {
        PyErr_SetString(PyExc_IndexError, "ReadStore.joined: start out of range");
        return NULL;
    }
    Py_ssize_t from = start ? self->ends[start - 1] : 0;
    return PyBytes_FromStringAndSize(self->data + from, self->used - from);
}

static PyObject *ReadStore_get_limit(ReadStore *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(self->limit);
}

static PyMethodDef ReadStore_methods[] = {
    {"append", (PyCFunction)ReadStore_append, METH_VARARGS,
     "append(data, recv_ns) -> bool: keep one read; True when the limit is reached"},
    {"take", (PyCFunction)ReadStore_take, METH_NOARGS,
     "take() -> (chunks, times): every read kept, in order; the store is then empty"},
    {"joined", (PyCFunction)ReadStore_joined, METH_VARARGS,
     "joined(start=0) -> bytes: reads start.. back to back (they stay kept)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ReadStore_getset[] = {
    {"limit", (getter)ReadStore_get_limit, NULL, "reads kept before they must be parsed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods ReadStore_sequence = {
    .sq_length = (lenfunc)ReadStore_len,
};

PyTypeObject ReadStoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "clients.readloop.ReadStore",
    .tp_doc = "ReadStore(limit, bytes_per_read=160): a taken connection's reads until parsed",
    .tp_basicsize = sizeof(ReadStore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ReadStore_init,
    .tp_dealloc = (destructor)ReadStore_dealloc,
    .tp_methods = ReadStore_methods,
    .tp_getset = ReadStore_getset,
    .tp_as_sequence = &ReadStore_sequence,
};
