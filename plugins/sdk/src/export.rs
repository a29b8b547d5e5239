//! The glue behind [`crate::export_plugins!`]: the `extern "C"` functions that wrap a
//! [`Pruner`] or [`Dataset`], catch its panics, and hand its results to the host as [`Buf`]s.
//!
//! Plugin authors do not call anything here directly; the items are public only because the
//! macros expand in the plugin's crate.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Once, OnceLock};

use serde_json::{Value, json};

use crate::abi::{
    self, Buf, BuildFn, BuildRequest, DatasetOutput, PluginDescriptor, PluginList, ScoreFn,
    ScoreOutput, ScoreRequest, Status, StrView,
};
use crate::{
    Dataset, DatasetOut, LayerView, Params, Pruner, ScoreContext, TargetKind, params::schema_json,
};

/// Moves `v` into a [`Buf`] of element type `elem`; [`free_buf`] gives it back to the allocator.
fn buf<T>(v: Vec<T>, elem: u32) -> Buf {
    let mut v = std::mem::ManuallyDrop::new(v);
    Buf { ptr: v.as_mut_ptr().cast(), len: v.len(), cap: v.capacity(), elem }
}

fn text_buf(s: String) -> Buf {
    buf(s.into_bytes(), abi::ELEM_U8)
}

/// Frees a [`Buf`] made by this library. Unknown element types and null buffers are ignored.
///
/// # Safety
/// `b` must come from this library's outputs and must not have been freed before.
pub unsafe extern "C" fn free_buf(b: Buf) {
    if b.ptr.is_null() {
        return;
    }
    // SAFETY: `b` was made by `buf` from a `Vec` of the type its `elem` names, with this
    // length and capacity, and is freed once (the caller's contract).
    unsafe {
        match b.elem {
            abi::ELEM_U8 => drop(Vec::from_raw_parts(b.ptr.cast::<u8>(), b.len, b.cap)),
            abi::ELEM_F32 => drop(Vec::from_raw_parts(b.ptr.cast::<f32>(), b.len, b.cap)),
            abi::ELEM_U64 => drop(Vec::from_raw_parts(b.ptr.cast::<u64>(), b.len, b.cap)),
            _ => {}
        }
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

thread_local! {
    /// Whether this thread is inside [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic inside [`guarded`] happened, e.g. ` at src/lib.rs:25:24`.
    static LOCATION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs (once) a panic hook that, for panics inside [`guarded`], records the location
/// instead of printing: the host reports the panic with its message and location. Panics
/// elsewhere in the library go to the previous hook as before.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning `Err` and panics into a status and a message.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, (Status, String)> {
    install_panic_hook();
    GUARDED.with(|g| g.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err((abi::STATUS_ERROR, message)),
        Err(payload) => {
            let at = LOCATION.with(|l| std::mem::take(&mut *l.borrow_mut()));
            Err((abi::STATUS_PANIC, format!("panicked{at}: {}", panic_message(payload.as_ref()))))
        }
    }
}

fn parse_params(view: StrView) -> Result<Params, String> {
    // SAFETY: the host passes a view of a string it keeps alive for the call.
    let text = unsafe { view.to_str() }.ok_or("the parameters are not UTF-8")?;
    serde_json::from_str(text)
        .map(Params)
        .map_err(|e| format!("the parameters are not valid JSON: {e}"))
}

/// The layers of a request as safe views.
///
/// # Safety
/// The pointers of `req` must be valid for the call, as the host guarantees.
unsafe fn layers<'a>(req: &'a ScoreRequest) -> Result<Vec<LayerView<'a>>, String> {
    if req.n_layers == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the host passes `n_layers` views, each with `ndim` dims and `len` weights and mask
    // entries, alive for the duration of the call.
    unsafe {
        let raw = std::slice::from_raw_parts(req.layers, req.n_layers);
        raw.iter()
            .map(|l| {
                let slice = |p: *const f32| {
                    if l.len == 0 { &[][..] } else { std::slice::from_raw_parts(p, l.len) }
                };
                Ok(LayerView {
                    name: l.name.to_str().ok_or("a layer name is not UTF-8")?,
                    shape: if l.ndim == 0 {
                        &[]
                    } else {
                        std::slice::from_raw_parts(l.shape, l.ndim)
                    },
                    weights: slice(l.weights),
                    mask: slice(l.mask),
                })
            })
            .collect()
    }
}

/// The `score` function of pruner `P`.
///
/// # Safety
/// Called by the host with valid pointers (see [`abi::ScoreFn`]).
pub unsafe extern "C" fn score<P: Pruner>(
    req: *const ScoreRequest,
    out: *mut ScoreOutput,
) -> Status {
    if req.is_null() || out.is_null() {
        return abi::STATUS_ERROR;
    }
    // SAFETY: both pointers are valid for the call (checked non-null; the host's contract).
    let (req, out) = unsafe { (&*req, &mut *out) };
    let result = guarded(|| {
        let params = parse_params(req.params_json)?;
        // SAFETY: the host's contract for `req`.
        let layers = unsafe { layers(req) }?;
        let ctx = ScoreContext { seed: req.seed };
        let scores = P::default().score(&params, &layers, &ctx)?;
        let counts: Vec<u64> = scores.iter().map(|s| s.len() as u64).collect();
        Ok((scores.concat(), counts))
    });
    match result {
        Ok((flat, counts)) => {
            out.scores = buf(flat, abi::ELEM_F32);
            out.counts = buf(counts, abi::ELEM_U64);
            abi::STATUS_OK
        }
        Err((status, message)) => {
            out.error = text_buf(message);
            status
        }
    }
}

/// The metadata object described at [`abi::DatasetOutput`].
fn metadata(d: &DatasetOut) -> String {
    let targets = match d.targets {
        TargetKind::Classes(n) => json!({ "classes": n }),
        TargetKind::Regression(dim) => json!({ "regression": dim }),
    };
    let tokens = d.tokens.map_or(Value::Null, |t| json!({ "vocab": t.vocab, "n_ctx": t.n_ctx }));
    json!({ "description": d.description, "input_shape": d.input_shape, "targets": targets, "tokens": tokens }).to_string()
}

/// The `build` function of dataset `D`.
///
/// # Safety
/// Called by the host with valid pointers (see [`abi::BuildFn`]).
pub unsafe extern "C" fn build<D: Dataset>(
    req: *const BuildRequest,
    out: *mut DatasetOutput,
) -> Status {
    if req.is_null() || out.is_null() {
        return abi::STATUS_ERROR;
    }
    // SAFETY: both pointers are valid for the call (checked non-null; the host's contract).
    let (req, out) = unsafe { (&*req, &mut *out) };
    let result = guarded(|| {
        let params = parse_params(req.params_json)?;
        let d = D::default().build(&params, req.seed)?;
        Ok((metadata(&d), d))
    });
    match result {
        Ok((meta, d)) => {
            out.metadata = text_buf(meta);
            out.train_x = buf(d.train.x, abi::ELEM_F32);
            out.train_y = buf(d.train.y, abi::ELEM_F32);
            out.test_x = buf(d.test.x, abi::ELEM_F32);
            out.test_y = buf(d.test.y, abi::ELEM_F32);
            abi::STATUS_OK
        }
        Err((status, message)) => {
            out.error = text_buf(message);
            status
        }
    }
}

/// One plugin to export, as the macros list them.
pub struct Declared {
    kind: u32,
    name: &'static str,
    version: &'static str,
    summary: &'static str,
    schema: String,
    score: Option<ScoreFn>,
    build: Option<BuildFn>,
}

impl Declared {
    /// Pruner `P`.
    pub fn pruner<P: Pruner>() -> Self {
        Declared {
            kind: abi::KIND_PRUNER,
            name: P::NAME,
            version: P::VERSION,
            summary: P::SUMMARY,
            schema: schema_json(&P::params()),
            score: Some(score::<P>),
            build: None,
        }
    }

    /// Dataset `D`.
    pub fn dataset<D: Dataset>() -> Self {
        Declared {
            kind: abi::KIND_DATASET,
            name: D::NAME,
            version: D::VERSION,
            summary: D::SUMMARY,
            schema: schema_json(&D::params()),
            score: None,
            build: Some(build::<D>),
        }
    }
}

/// The library's plugin list, made once on the first call of the entry symbol and kept for the
/// life of the process.
pub struct Registration {
    // Owns the strings and descriptors that `list` points into.
    _declared: Vec<Declared>,
    _descriptors: Vec<PluginDescriptor>,
    _error: String,
    list: PluginList,
}

// SAFETY: a `Registration` is immutable after construction; its raw pointers point into its own
// heap allocations (never moved or freed while it lives) or to `'static` data.
unsafe impl Send for Registration {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for Registration {}

impl Registration {
    fn new(declared: Result<Vec<Declared>, (Status, String)>) -> Self {
        let (declared, status, error) = match declared {
            Ok(d) => (d, abi::STATUS_OK, String::new()),
            Err((status, message)) => (Vec::new(), status, message),
        };
        let descriptors: Vec<PluginDescriptor> = declared
            .iter()
            .map(|d| PluginDescriptor {
                kind: d.kind,
                name: StrView::new(d.name),
                version: StrView::new(d.version),
                summary: StrView::new(d.summary),
                params_schema: StrView::new(&d.schema),
                score: d.score,
                build: d.build,
            })
            .collect();
        let list = PluginList {
            abi_version: abi::ABI_VERSION,
            status,
            error: StrView::new(&error),
            plugins: descriptors.as_ptr(),
            len: descriptors.len(),
            free_buf: Some(free_buf),
        };
        Registration { _declared: declared, _descriptors: descriptors, _error: error, list }
    }
}

/// The body of the entry symbol: builds the list once (catching panics in the plugins'
/// `params()`), then returns it.
pub fn entry(
    cell: &'static OnceLock<Registration>,
    declare: fn() -> Vec<Declared>,
) -> *const PluginList {
    let registration = cell.get_or_init(|| Registration::new(guarded(|| Ok(declare()))));
    &registration.list
}

/// Exports pruners and datasets from a `cdylib`: defines the library's ABI version and entry
/// symbols. Use it once per library (or one of its shorthands [`crate::export_pruner!`] and
/// [`crate::export_dataset!`]).
///
/// ```ignore
/// ticketlab_plugin_sdk::export_plugins!(pruners: [NoisyMagnitude], datasets: [ModSub]);
/// ```
///
/// Each type must implement `Default` and [`crate::Pruner`] or [`crate::Dataset`]. Panics in
/// the plugin are caught and reported to ticketlab as errors (build with the default
/// `panic = "unwind"`; with `panic = "abort"` a panic ends the process).
#[macro_export]
macro_rules! export_plugins {
    (pruners: [$($p:ty),* $(,)?], datasets: [$($d:ty),* $(,)?] $(,)?) => {
        /// The plugin ABI version this library was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn ticketlab_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// Every plugin of this library.
        #[unsafe(no_mangle)]
        pub extern "C" fn ticketlab_plugin_entry() -> *const $crate::abi::PluginList {
            static REGISTRATION: ::std::sync::OnceLock<$crate::export::Registration> = ::std::sync::OnceLock::new();
            $crate::export::entry(&REGISTRATION, || {
                ::std::vec![$($crate::export::Declared::pruner::<$p>(),)* $($crate::export::Declared::dataset::<$d>(),)*]
            })
        }
    };
}

/// Exports one pruner from a `cdylib` (see [`crate::export_plugins!`]).
///
/// ```ignore
/// ticketlab_plugin_sdk::export_pruner!(NoisyMagnitude);
/// ```
#[macro_export]
macro_rules! export_pruner {
    ($p:ty) => {
        $crate::export_plugins!(pruners: [$p], datasets: []);
    };
}

/// Exports one dataset (task) from a `cdylib` (see [`crate::export_plugins!`]).
///
/// ```ignore
/// ticketlab_plugin_sdk::export_dataset!(ModSub);
/// ```
#[macro_export]
macro_rules! export_dataset {
    ($d:ty) => {
        $crate::export_plugins!(pruners: [], datasets: [$d]);
    };
}
