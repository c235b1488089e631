//! The buffer protocol, both ways: stored objects exported to Python as
//! read-only buffers (zero-copy), and Python buffers read by the writer;
//! and the one copy a get of `bytes` makes.
//!
//! This is the only module of brain-py with unsafe code.

use std::ffi::{c_int, c_void, CString};

use brain_core::{ObjectView, SharedBytes};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{ffi, IntoPyObjectExt};

/// A stored object's payload, exported read-only through the buffer protocol.
///
/// `memoryview(obj)`, `numpy.frombuffer(obj)` and `pyarrow.py_buffer(obj)`
/// all see the store's memory without a copy. The object keeps the memory
/// alive, and Python's buffer protocol keeps the object alive for as long as
/// any view of it exists, so the bytes stay valid after the name is replaced
/// or deleted.
#[derive(Debug)]
#[pyclass(name = "Object", module = "brain._brain", frozen)]
pub struct PyObjectView {
    pub(crate) view: ObjectView,
}

#[pymethods]
impl PyObjectView {
    /// # Safety
    /// Called by CPython with a valid `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("brain: no Py_buffer to fill"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(
                "objects read from brain are read-only; copy them to modify (e.g. bytearray(obj), arr.copy())",
            ));
        }
        let (ptr, len) = {
            let bytes = slf.get().view.bytes();
            (bytes.as_ptr(), bytes.len())
        };
        let format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            CString::new("B").expect("no NUL").into_raw()
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: `view` is non-null (checked above) and points at a
        // Py_buffer that CPython gives us to fill and that no one else
        // touches until __releasebuffer__, so a unique reference is sound.
        let view = unsafe { &mut *view };
        // `buf` points at the payload of `slf`, which `obj` (a new strong
        // reference to slf) keeps alive; the payload is immutable
        // (brain-core's sharing contract), so exporting it read-only is
        // sound. shape/strides point into the Py_buffer itself, which
        // outlives every use of them.
        view.obj = slf.into_any().into_ptr();
        view.buf = ptr as *mut c_void;
        view.len = len as isize;
        view.readonly = 1;
        view.itemsize = 1;
        view.format = format;
        view.ndim = 1;
        view.shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
            &mut view.len
        } else {
            std::ptr::null_mut()
        };
        view.strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            &mut view.itemsize
        } else {
            std::ptr::null_mut()
        };
        view.suboffsets = std::ptr::null_mut();
        view.internal = std::ptr::null_mut();
        Ok(())
    }

    /// # Safety
    /// Called by CPython with the Py_buffer filled by `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, view: *mut ffi::Py_buffer) {
        // SAFETY: `format` is either null or the CString leaked by
        // __getbuffer__ for this very Py_buffer; it is freed exactly once.
        let format = unsafe { (*view).format };
        if !format.is_null() {
            // SAFETY: see above: it came from CString::into_raw.
            drop(unsafe { CString::from_raw(format) });
        }
    }

    fn __len__(&self) -> usize {
        self.view.len()
    }

    fn __repr__(&self) -> String {
        let meta = self.view.meta();
        format!(
            "<brain.Object {:?} in {:?}: {} bytes, {}>",
            meta.name, meta.namespace, meta.size, meta.codec
        )
    }

    /// A copy of the payload as `bytes`.
    fn tobytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.view.bytes())
    }

    /// The codec name (`"raw"`, `"text"`, `"arrow"`, `"ndarray"`, `"pickle5"`, `"pandas"`, `"polars"`).
    #[getter]
    fn codec(&self) -> &'static str {
        self.view.meta().codec.name()
    }

    /// The object's name.
    #[getter]
    fn name(&self) -> &str {
        &self.view.meta().name
    }

    /// The object's namespace.
    #[getter]
    fn namespace(&self) -> &str {
        &self.view.meta().namespace
    }

    /// The description given when it was written.
    #[getter]
    fn description(&self) -> &str {
        &self.view.meta().description
    }

    /// The payload's length in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.view.meta().size
    }

    /// The address of the payload's first byte, for checking zero-copy.
    #[getter]
    fn address(&self) -> usize {
        self.view.as_ptr() as usize
    }

    /// The parts of a parts-layout payload (ndarray, pickle-5), each an
    /// `Object` over its range of this one's memory (no copy).
    fn parts(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        brain_core::split_parts(&self.view)
            .map_err(crate::errors::to_py)?
            .into_iter()
            .map(|part| object(py, part))
            .collect()
    }

    /// An ndarray object's metadata and data: `(dtype, shape, fortran_order,
    /// data)`, with `dtype` NumPy's description of the dtype as JSON and
    /// `data` an `Object` over the elements (no copy), checked to be exactly
    /// as long as the dtype and shape say.
    fn ndarray<'py>(&self, py: Python<'py>) -> PyResult<(String, Vec<u64>, bool, Py<PyAny>)> {
        let array = brain_core::decode_ndarray(&self.view).map_err(crate::errors::to_py)?;
        let offset = array.data.as_ptr() as usize - self.view.as_ptr() as usize;
        let data = self.view.slice(offset, array.data.len());
        let dtype = serde_json::to_string(&array.meta.dtype)
            .map_err(|e| PyValueError::new_err(format!("cannot describe the dtype: {e}")))?;
        Ok((
            dtype,
            array.meta.shape,
            array.meta.fortran_order,
            object(py, data)?,
        ))
    }
}

/// A contiguous Python buffer (bytes, bytearray, memoryview, numpy array,
/// pyarrow Buffer...) to be copied into the store.
///
/// The copy runs with the GIL released, so another Python thread may write
/// a writable exporter (a `bytearray`, a numpy array) meanwhile. Its bytes
/// are therefore never seen as a `&[u8]` (a data race there would be
/// undefined behaviour): they are handed to the store as
/// [`SharedBytes`], which only copies that allow concurrent writes read
/// (brain-core's `sys/copy.rs`). A racing writer can store a mix of old and
/// new bytes, stored with their own checksum; nothing worse.
pub struct InputBuffer {
    buffer: PyUntypedBuffer,
}

impl InputBuffer {
    /// Takes a buffer from any object exporting a C- or Fortran-contiguous buffer.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<InputBuffer> {
        let buffer = PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "brain can only write objects that export a buffer (bytes, bytearray, memoryview, numpy arrays), not {}",
                obj.get_type().name().map_or_else(|_| "this object".into(), |n| n.to_string())
            ))
        })?;
        if !buffer.is_c_contiguous() && !buffer.is_fortran_contiguous() {
            return Err(PyBufferError::new_err(
                "brain needs a contiguous buffer; pass numpy.ascontiguousarray(x) instead",
            ));
        }
        Ok(InputBuffer { buffer })
    }

    /// The buffer's bytes, for a copy that allows other threads to write
    /// them meanwhile.
    pub fn shared(&self) -> SharedBytes<'_> {
        let len = self.buffer.len_bytes();
        if len == 0 {
            return SharedBytes::from(&[][..]);
        }
        // SAFETY: the exporter keeps `len` bytes at buf_ptr allocated and
        // readable while the buffer is held, and self.buffer is released
        // only on drop, after every borrow of self ends; the buffer is
        // contiguous (checked in new), so it is one range. Other threads
        // may write it (a writable exporter): SharedBytes never makes a
        // reference of it, only copies that allow that.
        unsafe { SharedBytes::from_raw(self.buffer.buf_ptr() as *const u8, len) }
    }
}

/// Wraps a view as a Python `Object`.
pub fn object(py: Python<'_>, view: ObjectView) -> PyResult<Py<PyAny>> {
    PyObjectView { view }.into_py_any(py)
}

/// A new `bytes` object holding a copy of `src`, copied with the GIL
/// released so that a large copy does not stop the process's other Python
/// threads. Unlike `PyBytes::new_with`, the new object is not zeroed
/// first: that was a second pass over every byte, with the GIL held.
pub fn bytes_copied_without_gil<'py>(py: Python<'py>, src: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if src.is_empty() {
        // CPython's one empty bytes object, shared: nothing to write into it.
        return Ok(PyBytes::new(py, src));
    }
    let len = ffi::Py_ssize_t::try_from(src.len())
        .map_err(|_| PyValueError::new_err("the object is too large for a Python bytes"))?;
    // SAFETY: with a null pointer and the GIL held (`py`),
    // PyBytes_FromStringAndSize makes a fresh bytes object of `len` bytes
    // whose contents are not initialised yet; no byte is read before the
    // copy below writes them all.
    let made = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), len) };
    // SAFETY: `made` is a new reference the caller owns, or null with an
    // exception set, which from_owned_ptr_or_err turns into the error.
    let object = unsafe { Bound::from_owned_ptr_or_err(py, made)? };
    let bytes = object.cast_into::<PyBytes>()?;
    // SAFETY: `bytes` is a bytes object (checked by the cast), so
    // PyBytes_AsString returns its buffer of `len` bytes.
    let dst = DetachedBuffer(unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>());
    py.detach(|| {
        let dst = dst;
        populate(dst.0, src.len());
        // SAFETY: dst points at the `len` bytes of the object made above,
        // which stays alive (this function holds its only reference) and
        // which nothing else can reach before it is returned, so no other
        // thread reads or writes it while the GIL is released. `src` is a
        // borrowed slice of the same length, readable for the whole call,
        // and cannot overlap a buffer Python has just allocated.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.0, src.len()) }
    });
    // Every byte of the object is written: it may now be seen.
    Ok(bytes)
}

/// The buffer of a `bytes` object made by [`bytes_copied_without_gil`],
/// carried to the thread that runs without the GIL.
struct DetachedBuffer(*mut u8);

// SAFETY: the pointer is used only by the one closure it is moved into,
// while the object it points into is alive and reachable by nothing else.
unsafe impl Send for DetachedBuffer {}

/// Allocations at least this large are fresh mappings each time (glibc's
/// largest mmap threshold on 64-bit), never reused memory whose pages are
/// already there.
const POPULATE_FROM: usize = 32 << 20;

/// Faults in the pages of `len` bytes at `start` before a copy fills them,
/// when they are sure to be fresh ([`POPULATE_FROM`]): one system call
/// instead of a page fault per page, each of which stops the copy. Smaller
/// ones mostly reuse memory freed before, where this would only cost a
/// system call (docs/BENCHMARKS.md, "A get of `bytes`").
fn populate(start: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    if len < POPULATE_FROM || cfg!(miri) {
        return;
    }
    let aligned = start as usize & !(PAGE - 1);
    let span = start as usize + len - aligned;
    // SAFETY: MADV_POPULATE_WRITE changes no byte of memory: it only faults
    // pages in, as writing them would, and on a range that is not mapped
    // writable it fails without effect (the error is ignored: the copy then
    // faults the pages in itself). The range runs from the page that holds
    // `start` to the end of the `len` bytes, all inside the allocation's
    // mapping (a mapping is whole pages).
    let _ = unsafe {
        rustix::mm::madvise(
            aligned as *mut std::ffi::c_void,
            span,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}
