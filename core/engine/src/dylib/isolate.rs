//! Plugin calls in a separate process, so that a plugin which crashes (a stack overflow, an
//! abort, a segmentation fault) fails its stage instead of taking the host down with it.
//!
//! With [`isolate_calls`] set (the `ticketlab` program sets it to itself), every `score` and
//! `build` call of a library is sent to a fresh `HOST plugin-host` process: the request on its
//! standard input, the raw output buffers back on its standard output. The host then checks and
//! converts them exactly as for a call in its own process, so both give the same results. Without
//! it (ticketlab used as a library, unit tests), calls run in the calling process.
//!
//! The messages are length-prefixed frames (a little-endian `u64` byte count, then the bytes):
//! first a JSON header, then the arrays as raw bytes in this machine's byte order. Parent and
//! child are the same program on the same machine, so no format beyond that is needed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::pruner::Layer;
use super::{Adapter, CallSite, Element, Returned, abi, open_adapter};
use crate::{Error, Result};

/// The program that serves isolated calls, if calls are isolated.
static HOST: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Runs every dynamic plugin call in a child process `host plugin-host` (`host` must serve it
/// with [`serve_isolated_call`]); `None` runs them in this process.
pub fn isolate_calls(host: Option<PathBuf>) {
    *HOST.lock().unwrap_or_else(|e| e.into_inner()) = host;
}

/// The program serving isolated calls, if any.
pub(super) fn host() -> Option<PathBuf> {
    HOST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What the child is asked to call.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    library: PathBuf,
    plugin: String,
    params_json: String,
    seed: u64,
    /// For a pruner: each layer's name and shape; the weights and mask of each follow as frames.
    layers: Vec<(String, Vec<usize>)>,
}

/// The call's status and its output buffers' element types and lengths; the bytes follow as
/// frames.
#[derive(Debug, Serialize, Deserialize)]
struct Response {
    status: abi::Status,
    outputs: Vec<(u32, usize)>,
}

/// A pruner's `score` in a child process.
pub(super) fn score(
    host: &Path,
    call: &CallSite,
    params_json: &str,
    seed: u64,
    layers: &[Layer<'_>],
) -> Result<(abi::Status, [Returned; 3])> {
    let request = Request {
        library: call.library.clone(),
        plugin: plugin_name(call),
        params_json: params_json.to_string(),
        seed,
        layers: layers.iter().map(|l| (l.name.to_string(), l.shape.to_vec())).collect(),
    };
    let arrays: Vec<&[f32]> = layers.iter().flat_map(|l| [l.weights, l.mask]).collect();
    let (status, outputs) = exchange(host, call, &request, &arrays)?;
    Ok((status, outputs.try_into().map_err(|_| broken(call, "a wrong number of outputs"))?))
}

/// A dataset's `build` in a child process.
pub(super) fn build(
    host: &Path,
    call: &CallSite,
    params_json: &str,
    seed: u64,
) -> Result<(abi::Status, [Returned; 6])> {
    let request = Request {
        library: call.library.clone(),
        plugin: plugin_name(call),
        params_json: params_json.to_string(),
        seed,
        layers: Vec::new(),
    };
    let (status, outputs) = exchange(host, call, &request, &[])?;
    Ok((status, outputs.try_into().map_err(|_| broken(call, "a wrong number of outputs"))?))
}

/// `name` of the call site's `kind/name`.
fn plugin_name(call: &CallSite) -> String {
    call.id.rsplit('/').next().unwrap_or(&call.id).to_string()
}

fn broken(call: &CallSite, what: &str) -> Error {
    call.error(format!(
        "the process that ran the call answered with {what}; this is a bug in ticketlab"
    ))
}

/// Sends `request` and `arrays` to a new child and reads its answer.
fn exchange(
    host: &Path,
    call: &CallSite,
    request: &Request,
    arrays: &[&[f32]],
) -> Result<(abi::Status, Vec<Returned>)> {
    let mut child = Command::new(host)
        .arg("plugin-host")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            call.error(format!("cannot start `{} plugin-host` to run it: {e}", host.display()))
        })?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let header = serde_json::to_vec(request).expect("a request serialises");
    // The child reads its whole input before it answers, so writing first cannot deadlock; a
    // child that died early makes the write fail, and its exit status says why below.
    let written = write_frame(&mut input, &header)
        .and_then(|()| arrays.iter().try_for_each(|a| write_frame(&mut input, &f32_bytes(a))));
    drop(input);
    let output =
        child.wait_with_output().map_err(|e| call.error(format!("lost its process: {e}")))?;
    if !output.status.success() {
        return Err(crashed(call, &output.status, &output.stderr));
    }
    written.map_err(|e| call.error(format!("could not send the call to its process: {e}")))?;
    let mut answer = output.stdout.as_slice();
    let response: Response = read_frame(&mut answer)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| broken(call, "no readable header"))?;
    let mut outputs = Vec::with_capacity(response.outputs.len());
    for (elem, len) in response.outputs {
        let bytes = read_frame(&mut answer).map_err(|_| broken(call, "too few buffers"))?;
        outputs.push(Returned { elem, len, bytes });
    }
    Ok((response.status, outputs))
}

/// The error for a child that did not answer: the signal or exit code, and what it printed.
fn crashed(call: &CallSite, status: &std::process::ExitStatus, stderr: &[u8]) -> Error {
    #[cfg(unix)]
    let how = {
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            Some(6) => "was aborted (SIGABRT: a stack overflow or an abort)".to_string(),
            Some(11) => "crashed (SIGSEGV: an invalid memory access)".to_string(),
            Some(7) => "crashed (SIGBUS: an invalid memory access)".to_string(),
            Some(9) => "was killed (SIGKILL: out of memory, or killed by hand)".to_string(),
            Some(n) => format!("was killed by signal {n}"),
            None => format!("exited with {status}"),
        }
    };
    #[cfg(not(unix))]
    let how = format!("exited with {status}");
    let text = String::from_utf8_lossy(stderr);
    let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let said = match last.len() {
        0 => String::new(),
        n => format!("; it printed: {}", last[n.saturating_sub(3)..].join(" / ")),
    };
    call.error(format!(
        "the call {how} in the separate process ticketlab runs plugin calls in, so only this stage fails{said}. Fix the plugin and rerun: finished stages are kept"
    ))
}

/// Serves one isolated call: reads the request on standard input, calls the plugin in this
/// process and writes the answer on standard output. `ticketlab plugin-host` runs this.
pub fn serve_isolated_call() -> Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| Error::Other(format!("reading the call: {e}")))?;
    let mut frames = input.as_slice();
    let request: Request = read_frame(&mut frames)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| Error::Other("the call's header is not readable".into()))?;
    // This process calls the plugin itself.
    isolate_calls(None);
    let (status, outputs): (abi::Status, Vec<Returned>) =
        match open_adapter(&request.library, &request.plugin)? {
            Adapter::Pruner(p) => {
                let mut arrays = Vec::with_capacity(request.layers.len() * 2);
                for _ in 0..request.layers.len() * 2 {
                    let bytes = read_frame(&mut frames)
                        .map_err(|_| Error::Other("the call has too few arrays".into()))?;
                    arrays.push(
                        bytes
                            .chunks_exact(4)
                            .map(<f32 as Element>::from_bytes)
                            .collect::<Vec<f32>>(),
                    );
                }
                let layers: Vec<Layer<'_>> = request
                    .layers
                    .iter()
                    .zip(arrays.chunks_exact(2))
                    .map(|((name, shape), pair)| Layer {
                        name,
                        shape,
                        weights: &pair[0],
                        mask: &pair[1],
                    })
                    .collect();
                let (status, outputs) = p.call_score(&request.params_json, request.seed, &layers);
                (status, outputs.into())
            }
            Adapter::Dataset(d) => {
                let (status, outputs) = d.call_build(&request.params_json, request.seed);
                (status, outputs.into())
            }
        };
    let response = Response { status, outputs: outputs.iter().map(|o| (o.elem, o.len)).collect() };
    let mut out = std::io::stdout().lock();
    let header = serde_json::to_vec(&response).expect("a response serialises");
    write_frame(&mut out, &header)
        .and_then(|()| outputs.iter().try_for_each(|o| write_frame(&mut out, &o.bytes)))
        .and_then(|()| out.flush())
        .map_err(|e| Error::Other(format!("writing the answer: {e}")))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn write_frame(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)
}

fn read_frame(r: &mut &[u8]) -> std::result::Result<Vec<u8>, ()> {
    let (len, rest) = r.split_at_checked(8).ok_or(())?;
    let len =
        usize::try_from(u64::from_le_bytes(len.try_into().map_err(|_| ())?)).map_err(|_| ())?;
    let (bytes, rest) = rest.split_at_checked(len).ok_or(())?;
    *r = rest;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_short_input() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"head").unwrap();
        write_frame(&mut buf, &f32_bytes(&[1.5, f32::NEG_INFINITY])).unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r).unwrap(), b"head");
        let back = Returned { elem: abi::ELEM_F32, len: 2, bytes: read_frame(&mut r).unwrap() };
        assert_eq!(back.values::<f32>(), Some(vec![1.5, f32::NEG_INFINITY]));
        assert!(read_frame(&mut r).is_err());
        let mut cut = &buf[..buf.len() - 1];
        read_frame(&mut cut).unwrap();
        assert!(read_frame(&mut cut).is_err());
    }
}
