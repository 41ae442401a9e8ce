/* ReadStore: one taken connection's reads until they are parsed (clients/readstore.c). */
#ifndef DUPLEXBENCH_READSTORE_H
#define DUPLEXBENCH_READSTORE_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    char *data;            /* every read's bytes, back to back */
    Py_ssize_t used, capacity;
    Py_ssize_t *ends;      /* ends[i]: where read i ends in data */
    long long *times;      /* times[i]: its receive time (CLOCK_MONOTONIC ns) */
    Py_ssize_t count, slots, limit;
} ReadStore;

extern PyTypeObject ReadStoreType;

/* Keeps n bytes read at t; 1 when the store now holds its limit of reads (the caller has it
 * parsed), 0 when not, -1 with MemoryError. */
int readstore_append(ReadStore *store, const char *bytes, Py_ssize_t n, long long t);

#endif
