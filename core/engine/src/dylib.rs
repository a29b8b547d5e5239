//! Dynamic plugins: pruners and datasets in shared libraries built with `ticketlab-plugin-sdk`.
//!
//! [`register_library`] is the one way to add a library to a [`Registry`]: it opens a library
//! the user named (`--plugin PATH` or the experiment file's `plugins:` list) and adds one
//! [`PluginEntry`] per plugin it exports, refusing a name that is already taken, built-ins
//! included. Naming the same library twice (by any path, or two copies of the same file) adds
//! it once. The entries behave like built-ins: their instances
//! implement [`PrunerPlugin`](ticketlab_api::plugin::PrunerPlugin) and
//! [`DatasetPlugin`](ticketlab_api::plugin::DatasetPlugin) over the C ABI (`ticketlab-abi`) and
//! check everything a library returns before the engine sees it:
//! a pruner's scores must have one value per weight of every layer and no NaN; a dataset's
//! splits must agree with its declared shapes, with finite inputs and valid labels.
//!
//! Loading, in order, each step refused with an error that names the library and the fix:
//!
//! 1. the path must name an existing file (it is made absolute, so the system's library search
//!    path is never consulted);
//! 2. the file must be a loadable shared library, and an ELF file's headers, segments and
//!    sections must lie inside it (checked before the system loader maps it, which would
//!    otherwise kill the process with SIGBUS on a truncated file);
//! 3. it must export [`abi::ABI_VERSION_SYMBOL`], and that must return [`abi::ABI_VERSION`]:
//!    this is checked **before** any other symbol is touched, because nothing else about a
//!    library built for another ABI can be trusted;
//! 4. it must export [`abi::ENTRY_SYMBOL`], whose list must be well formed: known kinds, valid
//!    names and versions, parameter schemas that parse and whose defaults pass their own checks.
//!
//! Calls: with a plugin host program in the stage's runtime (the `ticketlab` program sets
//! itself), every `score` and `build` call runs in a child process ([`isolate`]), so a plugin
//! that overflows its stack, aborts, crashes or never returns fails its stage with a message
//! naming the library, and the run goes on. What comes back is checked the same way in both
//! cases.
//!
//! Libraries are never unloaded: a Rust `cdylib` that has run thread-local destructors or
//! handed out function pointers cannot be closed safely (closing it crashes at thread exit on
//! some platforms, and some platforms ignore closing anyway), so every opened library is leaked
//! for the life of the process, including ones refused after opening.
//!
//! The SHA-256 of the library file is recorded in [`Origin::Dynamic`]; it enters every cache
//! key computed with the plugin, so rebuilding a library with different code invalidates the
//! results it produced.

// Calls into libraries over the C ABI.
#![allow(unsafe_code)]

mod dataset;
mod elf;
mod isolate;
mod pruner;
mod schema;

pub use isolate::serve_isolated_call;

use ticketlab_abi as abi;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;
use sha2::{Digest, Sha256};

use ticketlab_api::plugin::PluginKind;
use ticketlab_api::plugin::registry::{Origin, PluginEntry, PluginInstance, Registry};
use ticketlab_api::{Error, Result};

/// Loads the library at `path` and adds its plugins to `registry`; returns the `kind/name` of
/// every plugin of the library. Every way a library can be refused is checked first (see the
/// module docs), and a library is added whole or not at all.
///
/// Idempotent: a library whose content (SHA-256) is already in the registry, whether named
/// again by the same path, by another spelling of it or as a copy elsewhere, is not opened
/// again and adds nothing. Any other name clash, with a built-in or with another library, is
/// refused with an error naming both.
pub fn register_library(registry: &mut Registry, path: &Path) -> Result<Vec<String>> {
    let file = LibraryFile::identify(path)?;
    let known: Vec<String> = registry
        .entries()
        .filter(|e| matches!(&e.origin, Origin::Dynamic { sha256, .. } if *sha256 == file.sha256))
        .map(PluginEntry::id)
        .collect();
    if !known.is_empty() {
        return Ok(known);
    }
    let (library, plugins) = load(file)?;
    let entries: Vec<PluginEntry> = plugins.into_iter().map(|(e, _)| e).collect();
    for (i, entry) in entries.iter().enumerate() {
        if entries[..i].iter().any(|e| e.kind == entry.kind && e.name == entry.name) {
            return Err(library.error(format!(
                "exports two plugins called `{}`; give each a different `NAME`",
                entry.id()
            )));
        }
        let changed = registry.get(entry.kind, &entry.name).is_some_and(
            |e| matches!(&e.origin, Origin::Dynamic { path, .. } if *path == library.path),
        );
        if changed {
            return Err(library.error("changed on disk since ticketlab first loaded it (its content hash differs); name it once, and do not rebuild it while ticketlab starts"));
        }
        registry.check_free(entry, None)?;
    }
    let ids = entries.iter().map(PluginEntry::id).collect();
    for entry in entries {
        registry.insert(entry)?;
    }
    Ok(ids)
}

/// Opens an identified library and returns its plugins (steps 2 to 4 of the module docs). The
/// library stays loaded for the life of the process.
fn load(file: LibraryFile) -> Result<(Loaded, Vec<(PluginEntry, Adapter)>)> {
    let library = Loaded::open(file)?;
    let list = library.plugin_list()?;
    let descriptors: &[abi::PluginDescriptor] = if list.len == 0 || list.plugins.is_null() {
        &[]
    } else {
        // SAFETY: the entry function returns `len` descriptors that live as long as the library,
        // which is never unloaded.
        unsafe { std::slice::from_raw_parts(list.plugins, list.len) }
    };
    if descriptors.is_empty() {
        return Err(library.error(
            "exports no plugins; list at least one type in `export_pruner!`, `export_dataset!` or `export_plugins!`",
        ));
    }
    let Some(free_buf) = list.free_buf else {
        return Err(library.error("gives no `free_buf` to free what it returns; build it with `ticketlab-plugin-sdk`'s export macros"));
    };
    let entries = descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| library.entry(i, d, free_buf))
        .collect::<Result<_>>()?;
    Ok((library, entries))
}

/// A library file the user named, before it is opened: step 1 of the module docs.
struct LibraryFile {
    /// The path as the user gave it (for messages).
    given: PathBuf,
    /// The absolute path, symbolic links resolved.
    path: PathBuf,
    /// SHA-256 of the file's bytes.
    sha256: String,
}

impl LibraryFile {
    /// Resolves `path` and hashes the file.
    fn identify(path: &Path) -> Result<Self> {
        let refuse = |message: String| Error::plugin(path.display().to_string(), message);
        let absolute = std::fs::canonicalize(path).map_err(|e| {
            refuse(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file; build the plugin crate (`cargo build`) and pass the library it produces, \
                     e.g. `target/debug/libmy_plugin.so`"
                        .to_string()
                }
                _ => format!("cannot be read: {e}"),
            })
        })?;
        if !absolute.is_file() {
            return Err(refuse("is not a file; pass the shared library itself, e.g. `target/debug/libmy_plugin.so`".into()));
        }
        let bytes = std::fs::read(&absolute).map_err(|e| Error::io(&absolute, e))?;
        elf::check(&bytes).map_err(|why| {
            refuse(format!("is truncated or malformed ({why}); rebuild the plugin (`cargo build`) and pass the new library"))
        })?;
        Ok(LibraryFile {
            given: path.to_path_buf(),
            path: absolute,
            sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }
}

/// A library that passed the ABI version check.
struct Loaded {
    library: &'static Library,
    path: PathBuf,
    sha256: String,
}

impl Loaded {
    /// Steps 2 and 3 of the module docs.
    fn open(file: LibraryFile) -> Result<Self> {
        let LibraryFile { given, path, sha256 } = file;
        // SAFETY: opening a library runs its initialisers. Only a path the user named explicitly
        // is opened, by its absolute path (never a search), which is the trust ticketlab extends
        // to plugins.
        let library = unsafe { Library::new(&path) }.map_err(|e| {
            Error::plugin(
                given.display().to_string(),
                format!(
                    "is not a loadable shared library ({}); pass a `cdylib` built with ticketlab-plugin-sdk",
                    loader_detail(&e, &path)
                ),
            )
        })?;
        // Never unloaded (see the module docs).
        let library: &'static Library = Box::leak(Box::new(library));
        let loaded = Loaded { library, path, sha256 };
        loaded.check_abi_version()?;
        Ok(loaded)
    }

    /// An error naming this library.
    fn error(&self, message: impl Into<String>) -> Error {
        Error::plugin(self.path.display().to_string(), message)
    }

    /// The function exported as `name`, if any.
    fn symbol<T: Copy>(&self, name: &str) -> Option<T> {
        // SAFETY: `T` is the function type the ABI defines for `name`; the version check (done
        // first) is what makes trusting that type reasonable. The library is never unloaded,
        // so the copied function pointer stays valid.
        unsafe { self.library.get::<T>(name.as_bytes()).ok().map(|s| *s) }
    }

    fn check_abi_version(&self) -> Result<()> {
        let version_fn: abi::AbiVersionFn =
            self.symbol(abi::ABI_VERSION_SYMBOL).ok_or_else(|| {
                self.error(format!(
                    "is not a ticketlab plugin: it does not export `{}`; export its plugins with \
                 `ticketlab_plugin_sdk::export_pruner!(Type)` or `export_dataset!(Type)`",
                    abi::ABI_VERSION_SYMBOL
                ))
            })?;
        // SAFETY: the ABI version function takes nothing and returns a u32 in every ABI version.
        let version = unsafe { version_fn() };
        if version != abi::ABI_VERSION {
            return Err(self.error(format!(
                "was built for plugin ABI version {version}, but this ticketlab speaks version {}; \
                 rebuild the plugin against the ticketlab-plugin-sdk of this ticketlab ({})",
                abi::ABI_VERSION,
                env!("CARGO_PKG_VERSION")
            )));
        }
        Ok(())
    }

    /// Step 4: the entry function's list.
    fn plugin_list(&self) -> Result<&'static abi::PluginList> {
        let entry: abi::EntryFn = self.symbol(abi::ENTRY_SYMBOL).ok_or_else(|| {
            self.error(format!(
                "exports the plugin ABI version but no `{}`; export its plugins with \
                 `ticketlab_plugin_sdk::export_pruner!(Type)` or `export_dataset!(Type)` \
                 instead of defining the symbols by hand",
                abi::ENTRY_SYMBOL
            ))
        })?;
        // SAFETY: the ABI version matched, so `entry` has this signature; it returns null or a
        // list that lives as long as the library (forever).
        let list = unsafe { entry().as_ref() }.ok_or_else(|| {
            self.error(format!("`{}` returned no plugin list", abi::ENTRY_SYMBOL))
        })?;
        if list.abi_version != abi::ABI_VERSION {
            return Err(self.error(format!(
                "its plugin list declares ABI version {}, but this ticketlab speaks version {}; rebuild the plugin",
                list.abi_version,
                abi::ABI_VERSION
            )));
        }
        if list.status != abi::STATUS_OK {
            // SAFETY: the message lives with the list.
            let message = unsafe { list.error.to_str() }.unwrap_or("(message not UTF-8)");
            return Err(self.error(format!("failed while listing its plugins: {message}")));
        }
        Ok(list)
    }

    /// A registry entry for the `index`-th descriptor.
    fn entry(
        &self,
        index: usize,
        d: &abi::PluginDescriptor,
        free_buf: abi::FreeBufFn,
    ) -> Result<(PluginEntry, Adapter)> {
        let text = |what: &str, view: abi::StrView| {
            // SAFETY: descriptor strings live as long as the library (forever).
            unsafe { view.to_str() }
                .map(str::to_string)
                .ok_or_else(|| self.error(format!("plugin #{index}: its {what} is not UTF-8")))
        };
        let name = text("name", d.name)?;
        if !is_identifier(&name) {
            return Err(self.error(format!(
                "plugin #{index} is named `{name}`; names must start with a lowercase letter and use only \
                 lowercase letters, digits and `_`"
            )));
        }
        let kind = match d.kind {
            abi::KIND_PRUNER => PluginKind::Pruner,
            abi::KIND_DATASET => PluginKind::Dataset,
            other => {
                return Err(self.error(format!(
                    "plugin `{name}` has unknown kind {other}; rebuild it with the current SDK"
                )));
            }
        };
        let version = text("version", d.version)?;
        if version.trim().is_empty() {
            return Err(self.error(format!(
                "{kind} `{name}` has an empty version; set `const VERSION`, e.g. \"0.1.0\""
            )));
        }
        let summary = text("summary", d.summary)?;
        let params = schema::parse(kind, &text("parameter schema", d.params_schema)?)
            .map_err(|e| self.error(format!("{kind} `{name}`: invalid parameter schema: {e}")))?;
        let call = CallSite { id: format!("{kind}/{name}"), library: self.path.clone(), free_buf };
        let missing = |f: &str| {
            self.error(format!(
                "{kind} `{name}` has no `{f}` function; export it with the SDK's macros"
            ))
        };
        let (instance, adapter) = match kind {
            PluginKind::Pruner => {
                let p = pruner::DynPruner::new(call, d.score.ok_or_else(|| missing("score"))?);
                (PluginInstance::Pruner(Arc::new(p.clone())), Adapter::Pruner(p))
            }
            _ => {
                let b = dataset::DynDataset::new(call, d.build.ok_or_else(|| missing("build"))?);
                (PluginInstance::Dataset(Arc::new(b.clone())), Adapter::Dataset(b))
            }
        };
        let entry = PluginEntry {
            kind,
            name,
            version,
            summary,
            params,
            origin: Origin::Dynamic { path: self.path.clone(), sha256: self.sha256.clone() },
            instance,
        };
        Ok((entry, adapter))
    }
}

/// A plugin of a library, as the host calls it.
enum Adapter {
    Pruner(pruner::DynPruner),
    Dataset(dataset::DynDataset),
}

/// The plugin `name` of the library at `path`, for a call isolated in this process.
fn open_adapter(path: &Path, name: &str) -> Result<Adapter> {
    let (library, plugins) = load(LibraryFile::identify(path)?)?;
    plugins
        .into_iter()
        .find(|(e, _)| e.name == name)
        .map(|(_, adapter)| adapter)
        .ok_or_else(|| library.error(format!("has no plugin `{name}` any more; was it rebuilt?")))
}

/// The loader's own explanation, without the path it repeats (the error already names it).
fn loader_detail(e: &libloading::Error, path: &Path) -> String {
    let text = e.to_string();
    let text = text.replace(&format!("{}: ", path.display()), "");
    text.trim().to_string()
}

/// `[a-z][a-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// One prunable layer a pruner's `score` reads, borrowed and kept alive while the library (or
/// the process an isolated call runs in) reads it.
struct Layer<'a> {
    name: &'a str,
    shape: &'a [usize],
    weights: &'a [f32],
    mask: &'a [f32],
}

/// What an adapter needs to call into its library and report problems.
#[derive(Clone)]
struct CallSite {
    /// `kind/name`.
    id: String,
    /// The library's absolute path.
    library: PathBuf,
    /// The library's `free_buf`.
    free_buf: abi::FreeBufFn,
}

impl CallSite {
    /// An error naming the plugin and its library.
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::plugin(self.id.clone(), format!("{message} (library {})", self.library.display()))
    }

    /// The error for a call that did not return [`abi::STATUS_OK`].
    fn failed(&self, status: abi::Status, error: &Returned) -> Error {
        let message = error
            .values::<u8>()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "no message".to_string());
        match status {
            abi::STATUS_ERROR => self.error(format!("refused: {message}")),
            abi::STATUS_PANIC => self.error(format!("{message}; this is a bug in the plugin")),
            other => self.error(format!("returned unknown status {other}: {message}")),
        }
    }

    /// Copies an output buffer of this library's call and hands it back to the library, which
    /// frees it.
    fn take(&self, buf: abi::Buf) -> Returned {
        let size = Returned::size_of(buf.elem);
        let bytes = match size {
            Some(size) if !buf.ptr.is_null() && buf.len > 0 => {
                // SAFETY: the buffer is an output of a finished call: `len` elements of `elem`
                // bytes each, allocated by the library and not freed until below.
                unsafe { std::slice::from_raw_parts(buf.ptr as *const u8, buf.len * size) }.to_vec()
            }
            _ => Vec::new(),
        };
        let returned = Returned { elem: buf.elem, len: buf.len, bytes };
        // SAFETY: the buffer came from this library's call and is freed exactly once.
        unsafe { (self.free_buf)(buf) };
        returned
    }
}

/// An output buffer of a plugin call, owned by the host: copied out of the library's memory,
/// or read back from a call isolated in another process (see [`isolate`]).
#[derive(Debug, Clone, Default, PartialEq)]
struct Returned {
    /// [`abi::Buf::elem`].
    elem: u32,
    /// Elements.
    len: usize,
    /// The elements' bytes, in this machine's byte order (empty for an unknown element type).
    bytes: Vec<u8>,
}

impl Returned {
    /// The size of an element of type `elem`, if the ABI knows it.
    fn size_of(elem: u32) -> Option<usize> {
        match elem {
            abi::ELEM_U8 => Some(1),
            abi::ELEM_F32 => Some(4),
            abi::ELEM_U64 => Some(8),
            _ => None,
        }
    }

    /// The elements, if the buffer holds `T`s (an empty buffer holds any type).
    fn values<T: Element>(&self) -> Option<Vec<T>> {
        if self.len == 0 {
            return Some(Vec::new());
        }
        if Self::size_of(self.elem) != Some(T::SIZE) || self.bytes.len() != self.len * T::SIZE {
            return None;
        }
        Some(self.bytes.chunks_exact(T::SIZE).map(T::from_bytes).collect())
    }
}

/// The element types of output buffers.
trait Element: Sized {
    const SIZE: usize;
    fn from_bytes(bytes: &[u8]) -> Self;
}

impl Element for u8 {
    const SIZE: usize = 1;
    fn from_bytes(bytes: &[u8]) -> Self {
        bytes[0]
    }
}

impl Element for f32 {
    const SIZE: usize = 4;
    fn from_bytes(bytes: &[u8]) -> Self {
        f32::from_ne_bytes(bytes.try_into().expect("chunks of 4 bytes"))
    }
}

impl Element for u64 {
    const SIZE: usize = 8;
    fn from_bytes(bytes: &[u8]) -> Self {
        u64::from_ne_bytes(bytes.try_into().expect("chunks of 8 bytes"))
    }
}
