//! The buffer protocol, both ways: stored objects exported to Python as
//! read-only buffers (zero-copy), and Python buffers read by the writer.
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
