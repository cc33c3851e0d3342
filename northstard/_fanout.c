/* One frame to many sockets with the GIL released: the fan-out's inner loop.
 *
 * send_many(fds, data, start, stop) -> list of (index, result) for the sockets
 * in fds[start:stop] that did not take all of data: result is the byte count
 * taken (0 when the socket would block) or -1 when the connection failed.
 * fds is a buffer of C ints (array('i')). Each send is non-blocking
 * (MSG_DONTWAIT) and raises no SIGPIPE (MSG_NOSIGNAL).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>

static PyObject *
send_many(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer fds, data;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "y*y*nn", &fds, &data, &start, &stop))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = fds.len / (Py_ssize_t)sizeof(int);
    if (fds.itemsize != sizeof(int) || start < 0 || stop > count || start > stop) {
        PyErr_SetString(PyExc_ValueError, "fds must be array('i') and 0 <= start <= stop <= len(fds)");
        goto done;
    }
    Py_ssize_t n = stop - start;
    ssize_t *sent = malloc((n ? n : 1) * sizeof(ssize_t));
    if (sent == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const int *fd = (const int *)fds.buf + start;
    const char *buf = data.buf;
    size_t size = (size_t)data.len;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        ssize_t r = send(fd[i], buf, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0)
            r = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        sent[i] = r;
    }
    Py_END_ALLOW_THREADS
    result = PyList_New(0);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        if (sent[i] == (ssize_t)size)
            continue;
        PyObject *item = Py_BuildValue("(nn)", start + i, (Py_ssize_t)sent[i]);
        if (item == NULL || PyList_Append(result, item) < 0)
            Py_CLEAR(result);
        Py_XDECREF(item);
    }
    free(sent);
done:
    PyBuffer_Release(&fds);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"send_many", send_many, METH_VARARGS,
     "send_many(fds, data, start, stop) -> [(index, sent)] for the sockets that did not take all"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_fanout", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    return PyModule_Create(&module);
}
