//! The OpenSlide C library (3.4 and 4.x), bound by hand: the nine functions a heatmap needs.
//!
//! Built only with the `openslide` feature, which links `libopenslide` (Debian:
//! `libopenslide-dev`). Without it, [`Handle`] has no value and [`Handle::open`] says how to get
//! one, so the rest of the crate compiles and runs on machines without the library.

use std::path::Path;

use super::SlideError;

#[cfg(feature = "openslide")]
mod ffi {
    use std::os::raw::{c_char, c_double};

    /// `openslide_t`: opaque.
    #[repr(C)]
    pub struct OpenSlideT {
        _private: [u8; 0],
    }

    #[link(name = "openslide")]
    unsafe extern "C" {
        pub fn openslide_open(filename: *const c_char) -> *mut OpenSlideT;
        pub fn openslide_close(osr: *mut OpenSlideT);
        pub fn openslide_get_error(osr: *mut OpenSlideT) -> *const c_char;
        pub fn openslide_get_level_count(osr: *mut OpenSlideT) -> i32;
        pub fn openslide_get_level_dimensions(
            osr: *mut OpenSlideT,
            level: i32,
            w: *mut i64,
            h: *mut i64,
        );
        pub fn openslide_get_level_downsample(osr: *mut OpenSlideT, level: i32) -> c_double;
        pub fn openslide_read_region(
            osr: *mut OpenSlideT,
            dest: *mut u32,
            x: i64,
            y: i64,
            level: i32,
            w: i64,
            h: i64,
        );
        pub fn openslide_get_property_value(
            osr: *mut OpenSlideT,
            name: *const c_char,
        ) -> *const c_char;
        pub fn openslide_get_version() -> *const c_char;
    }
}

/// An open OpenSlide handle (closed on drop).
#[cfg(feature = "openslide")]
pub(crate) struct Handle(std::ptr::NonNull<ffi::OpenSlideT>);

// OpenSlide's functions are thread-safe on one handle (its documentation says so); only
// `openslide_close`, run by `Drop`, needs exclusive access, which `Drop` has.
#[cfg(feature = "openslide")]
unsafe impl Send for Handle {}
#[cfg(feature = "openslide")]
unsafe impl Sync for Handle {}

/// A C string from the library as an owned `String` (`None` for a null pointer).
#[cfg(feature = "openslide")]
fn owned(ptr: *const std::os::raw::c_char) -> Option<String> {
    // SAFETY: OpenSlide returns null or a NUL-terminated string it keeps alive while the
    // handle is open; it is copied at once.
    (!ptr.is_null()).then(|| {
        unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

#[cfg(feature = "openslide")]
impl Handle {
    /// Opens `path`.
    ///
    /// # Errors
    ///
    /// [`SlideError::Unreadable`] when no OpenSlide format recognises the file or it is
    /// damaged.
    pub(crate) fn open(path: &Path) -> Result<Self, SlideError> {
        let unreadable = |why: String| SlideError::Unreadable {
            path: path.to_path_buf(),
            why,
        };
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| unreadable("the path holds a NUL byte".into()))?;
        // SAFETY: a valid NUL-terminated path; the result is null or a handle we own.
        let raw = unsafe { ffi::openslide_open(name.as_ptr()) };
        let handle = std::ptr::NonNull::new(raw)
            .map(Self)
            .ok_or_else(|| unreadable("not a format OpenSlide reads".into()))?;
        handle.check().map_err(unreadable)?;
        Ok(handle)
    }

    /// The handle's error, if it is in the error state.
    fn check(&self) -> Result<(), String> {
        // SAFETY: a live handle.
        match owned(unsafe { ffi::openslide_get_error(self.0.as_ptr()) }) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The version of the library.
    pub(crate) fn version() -> String {
        // SAFETY: a static string.
        owned(unsafe { ffi::openslide_get_version() }).unwrap_or_default()
    }

    /// The number of levels (`Err` with the library's message when it failed).
    pub(crate) fn level_count(&self) -> Result<usize, String> {
        // SAFETY: a live handle.
        let n = unsafe { ffi::openslide_get_level_count(self.0.as_ptr()) };
        self.check()?;
        usize::try_from(n).map_err(|_| format!("{n} levels"))
    }

    /// Width and height of `level`.
    pub(crate) fn level_dimensions(&self, level: usize) -> Result<(u64, u64), String> {
        let (mut w, mut h) = (-1i64, -1i64);
        // SAFETY: a live handle and two valid out-pointers.
        unsafe {
            ffi::openslide_get_level_dimensions(self.0.as_ptr(), level as i32, &mut w, &mut h)
        };
        self.check()?;
        match (u64::try_from(w), u64::try_from(h)) {
            (Ok(w), Ok(h)) => Ok((w, h)),
            _ => Err(format!("level {level} has dimensions {w} × {h}")),
        }
    }

    /// The downsample of `level` relative to level 0.
    pub(crate) fn level_downsample(&self, level: usize) -> Result<f64, String> {
        // SAFETY: a live handle.
        let d = unsafe { ffi::openslide_get_level_downsample(self.0.as_ptr(), level as i32) };
        self.check()?;
        if d.is_finite() && d > 0.0 {
            Ok(d)
        } else {
            Err(format!("level {level} has downsample {d}"))
        }
    }

    /// A property's value (`None` when the slide has none by that name).
    pub(crate) fn property(&self, name: &str) -> Option<String> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: a live handle and a NUL-terminated name.
        owned(unsafe { ffi::openslide_get_property_value(self.0.as_ptr(), name.as_ptr()) })
    }

    /// Reads `w × h` pixels of `level` whose top-left corner is `(x, y)` in level-0 pixels, as
    /// premultiplied ARGB words (OpenSlide's layout), row-major.
    pub(crate) fn read_argb(
        &self,
        (x, y): (i64, i64),
        level: usize,
        (w, h): (usize, usize),
    ) -> Result<Vec<u32>, String> {
        let mut out = vec![0u32; w * h];
        // SAFETY: a live handle; `out` holds exactly w × h words.
        unsafe {
            ffi::openslide_read_region(
                self.0.as_ptr(),
                out.as_mut_ptr(),
                x,
                y,
                level as i32,
                w as i64,
                h as i64,
            )
        };
        self.check()?;
        Ok(out)
    }
}

#[cfg(feature = "openslide")]
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and is not used after this.
        unsafe { ffi::openslide_close(self.0.as_ptr()) }
    }
}

/// Without the `openslide` feature no handle exists: [`Handle::open`] says how to build one.
#[cfg(not(feature = "openslide"))]
pub(crate) enum Handle {}

#[cfg(not(feature = "openslide"))]
impl Handle {
    /// Refuses: this build has no slide reader.
    pub(crate) fn open(path: &Path) -> Result<Self, SlideError> {
        Err(SlideError::NotBuilt {
            path: path.to_path_buf(),
        })
    }

    /// No library: an empty version.
    pub(crate) fn version() -> String {
        String::new()
    }

    /// Unreachable: no handle exists.
    pub(crate) fn level_count(&self) -> Result<usize, String> {
        match *self {}
    }

    /// Unreachable: no handle exists.
    pub(crate) fn level_dimensions(&self, _level: usize) -> Result<(u64, u64), String> {
        match *self {}
    }

    /// Unreachable: no handle exists.
    pub(crate) fn level_downsample(&self, _level: usize) -> Result<f64, String> {
        match *self {}
    }

    /// Unreachable: no handle exists.
    pub(crate) fn property(&self, _name: &str) -> Option<String> {
        match *self {}
    }

    /// Unreachable: no handle exists.
    pub(crate) fn read_argb(
        &self,
        _at: (i64, i64),
        _level: usize,
        _size: (usize, usize),
    ) -> Result<Vec<u32>, String> {
        match *self {}
    }
}
