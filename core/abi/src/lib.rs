//! The C ABI between ticketlab (the host) and a plugin library.
//!
//! Only `#[repr(C)]` structs, plain integers, raw pointers and `extern "C"` function pointers
//! cross the boundary: no Rust strings, vectors or trait objects, whose layout may differ between
//! two compilations. This module has no dependencies and no references to the rest of the SDK:
//! the host compiles this very file, so both sides share one definition.
//!
//! # Protocol
//!
//! 1. The host resolves [`ABI_VERSION_SYMBOL`] (`fn() -> u32`) **before anything else** and
//!    refuses the library unless it returns [`ABI_VERSION`].
//! 2. It resolves [`ENTRY_SYMBOL`] (`fn() -> *const PluginList`). The list and everything it
//!    points to live as long as the library, i.e. for the whole process (libraries are never
//!    unloaded).
//! 3. For each [`PluginDescriptor`], the host calls [`PluginDescriptor::score`] (pruners) or
//!    [`PluginDescriptor::build`] (datasets) with borrowed inputs. Outputs are [`Buf`]s that the
//!    plugin allocates; the host copies them and hands each back to [`PluginList::free_buf`],
//!    so memory is always freed by the side that allocated it.
//! 4. Every call returns a [`Status`]. On [`STATUS_ERROR`] or [`STATUS_PANIC`] the output's
//!    `error` buffer holds a UTF-8 message. Panics never cross the boundary: the SDK's export
//!    macros catch them and report [`STATUS_PANIC`].
//!
//! Bump [`ABI_VERSION`] on any change to a type or a function signature in this file.

// The ABI is raw pointers and `extern "C"` functions by nature.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// The version of this ABI. A library built against another version is refused.
pub const ABI_VERSION: u32 = 1;

/// Name of the exported `extern "C" fn() -> u32` returning the library's [`ABI_VERSION`].
pub const ABI_VERSION_SYMBOL: &str = "ticketlab_plugin_abi_version";

/// Name of the exported `extern "C" fn() -> *const PluginList`.
pub const ENTRY_SYMBOL: &str = "ticketlab_plugin_entry";

/// Type of the [`ABI_VERSION_SYMBOL`] function.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// Type of the [`ENTRY_SYMBOL`] function.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginList;

/// The result of a call: [`STATUS_OK`], [`STATUS_ERROR`] or [`STATUS_PANIC`].
pub type Status = i32;

/// The call succeeded; the outputs are filled.
pub const STATUS_OK: Status = 0;

/// The plugin refused (bad parameters, unsupported input); the message is in `error`.
pub const STATUS_ERROR: Status = 1;

/// The plugin panicked; the panic message is in `error`.
pub const STATUS_PANIC: Status = 2;

/// [`PluginDescriptor::kind`] of a pruner.
pub const KIND_PRUNER: u32 = 1;

/// [`PluginDescriptor::kind`] of a dataset (task).
pub const KIND_DATASET: u32 = 2;

/// [`Buf::elem`] of a byte (UTF-8 text) buffer.
pub const ELEM_U8: u32 = 1;

/// [`Buf::elem`] of an `f32` buffer.
pub const ELEM_F32: u32 = 4;

/// [`Buf::elem`] of a `u64` buffer.
pub const ELEM_U64: u32 = 8;

/// A borrowed UTF-8 string (not NUL-terminated). `ptr` may be null when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StrView {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl StrView {
    /// The empty string.
    pub const EMPTY: StrView = StrView { ptr: std::ptr::null(), len: 0 };

    /// A view of `s`; valid as long as `s` is.
    pub fn new(s: &str) -> Self {
        StrView { ptr: s.as_ptr(), len: s.len() }
    }

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (or `len` must be 0).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// The string viewed; `None` if it is not UTF-8.
    ///
    /// # Safety
    /// As for [`StrView::bytes`].
    pub unsafe fn to_str<'a>(&self) -> Option<&'a str> {
        // SAFETY: forwarded to the caller.
        std::str::from_utf8(unsafe { self.bytes() }).ok()
    }
}

/// A buffer allocated by the plugin and freed by the plugin's [`PluginList::free_buf`].
///
/// `ptr` is null for an empty or absent buffer; freeing it is then a no-op.
#[repr(C)]
#[derive(Debug)]
pub struct Buf {
    /// First element.
    pub ptr: *mut c_void,
    /// Number of elements.
    pub len: usize,
    /// Capacity in elements (needed by the allocator that frees it).
    pub cap: usize,
    /// Element type: [`ELEM_U8`], [`ELEM_F32`] or [`ELEM_U64`].
    pub elem: u32,
}

impl Buf {
    /// No buffer.
    pub const EMPTY: Buf = Buf { ptr: std::ptr::null_mut(), len: 0, cap: 0, elem: 0 };

    /// The elements as `T`, if the buffer holds `T`s (`elem` is `size_of::<T>()`).
    ///
    /// # Safety
    /// The buffer must come from a plugin's output and not have been freed; `T` must be one
    /// of `u8`, `f32`, `u64`.
    pub unsafe fn as_slice<T: Copy>(&self) -> Option<&[T]> {
        if self.elem as usize != std::mem::size_of::<T>() && !self.ptr.is_null() {
            return None;
        }
        if self.ptr.is_null() || self.len == 0 {
            return Some(&[]);
        }
        if !(self.ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: the plugin allocated `len` elements of `T` at `ptr` (checked tag and alignment).
        Some(unsafe { std::slice::from_raw_parts(self.ptr as *const T, self.len) })
    }
}

/// Type of [`PluginList::free_buf`].
pub type FreeBufFn = unsafe extern "C" fn(buf: Buf);

/// One prunable layer as a pruner sees it: borrowed from the host for the duration of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LayerView {
    /// Parameter name, e.g. `mlp.W_in`.
    pub name: StrView,
    /// Dimensions, outermost first.
    pub shape: *const usize,
    /// Number of dimensions.
    pub ndim: usize,
    /// The weights being scored (unmasked values), `len` of them, row-major.
    pub weights: *const f32,
    /// The current mask, `len` entries each exactly 0.0 (pruned) or 1.0 (alive).
    pub mask: *const f32,
    /// Number of weights (the product of `shape`).
    pub len: usize,
}

/// What a pruner is asked to score.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ScoreRequest {
    /// The stage's parameters as a JSON object, defaults filled (the core's own `rate`,
    /// `scope`, … included).
    pub params_json: StrView,
    /// The stage's derived seed.
    pub seed: u64,
    /// The prunable layers, sorted by name.
    pub layers: *const LayerView,
    /// Number of layers.
    pub n_layers: usize,
}

/// What a pruner returns.
#[repr(C)]
#[derive(Debug)]
pub struct ScoreOutput {
    /// [`ELEM_F32`]: the scores of every layer, concatenated in request order.
    pub scores: Buf,
    /// [`ELEM_U64`]: the number of scores of each layer (checked against the layers' sizes).
    pub counts: Buf,
    /// [`ELEM_U8`]: the message when the status is not [`STATUS_OK`].
    pub error: Buf,
}

impl ScoreOutput {
    /// Nothing returned yet.
    pub const EMPTY: ScoreOutput =
        ScoreOutput { scores: Buf::EMPTY, counts: Buf::EMPTY, error: Buf::EMPTY };
}

/// Type of [`PluginDescriptor::score`].
pub type ScoreFn =
    unsafe extern "C" fn(request: *const ScoreRequest, out: *mut ScoreOutput) -> Status;

/// What a dataset plugin is asked to build.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BuildRequest {
    /// The stage's parameters as a JSON object, defaults filled.
    pub params_json: StrView,
    /// The stage's derived seed.
    pub seed: u64,
}

/// What a dataset plugin returns.
///
/// `metadata` is a JSON object:
/// `{"description": str, "input_shape": [int], "targets": {"classes": n} | {"regression": dim},
///   "tokens": null | {"vocab": int, "n_ctx": int}}`.
/// Each split's `x` holds `n * prod(input_shape)` values; `y` holds `n` class labels (integral
/// values stored as `f32`) or `n * dim` regression targets.
#[repr(C)]
#[derive(Debug)]
pub struct DatasetOutput {
    /// [`ELEM_U8`]: the JSON metadata.
    pub metadata: Buf,
    /// [`ELEM_F32`]: training inputs.
    pub train_x: Buf,
    /// [`ELEM_F32`]: training targets.
    pub train_y: Buf,
    /// [`ELEM_F32`]: test inputs.
    pub test_x: Buf,
    /// [`ELEM_F32`]: test targets.
    pub test_y: Buf,
    /// [`ELEM_U8`]: the message when the status is not [`STATUS_OK`].
    pub error: Buf,
}

impl DatasetOutput {
    /// Nothing returned yet.
    pub const EMPTY: DatasetOutput = DatasetOutput {
        metadata: Buf::EMPTY,
        train_x: Buf::EMPTY,
        train_y: Buf::EMPTY,
        test_x: Buf::EMPTY,
        test_y: Buf::EMPTY,
        error: Buf::EMPTY,
    };
}

/// Type of [`PluginDescriptor::build`].
pub type BuildFn =
    unsafe extern "C" fn(request: *const BuildRequest, out: *mut DatasetOutput) -> Status;

/// One plugin in a library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginDescriptor {
    /// [`KIND_PRUNER`] or [`KIND_DATASET`].
    pub kind: u32,
    /// Name used in experiment files (`uses: NAME`).
    pub name: StrView,
    /// Semantic version; enters cache keys.
    pub version: StrView,
    /// One-line summary for `ticketlab plugins list`.
    pub summary: StrView,
    /// The parameter schema, a JSON array of
    /// `{"name", "type", "default"?, "min"?, "max"?, "max_exclusive"?, "doc"}` where `type` is
    /// `int`, `float`, `bool`, `string`, `int_list`, `float_list`, `string_list` or
    /// `{"choice": [str]}`.
    pub params_schema: StrView,
    /// Set for pruners.
    pub score: Option<ScoreFn>,
    /// Set for datasets.
    pub build: Option<BuildFn>,
}

/// What [`ENTRY_SYMBOL`] returns: every plugin of the library.
#[repr(C)]
#[derive(Debug)]
pub struct PluginList {
    /// [`ABI_VERSION`] again, as a second check.
    pub abi_version: u32,
    /// [`STATUS_OK`], or why the descriptors could not be made (message in `error`).
    pub status: Status,
    /// The message when `status` is not [`STATUS_OK`].
    pub error: StrView,
    /// First descriptor.
    pub plugins: *const PluginDescriptor,
    /// Number of descriptors.
    pub len: usize,
    /// Frees a [`Buf`] returned by any function of this library (a library without one is
    /// refused).
    pub free_buf: Option<FreeBufFn>,
}
