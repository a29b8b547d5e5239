//! Plugin calls in a separate process, so that a plugin which crashes (a stack overflow, an
//! abort, a segmentation fault) or never returns fails its stage instead of taking the host down
//! with it.
//!
//! With [`Runtime::plugin_host`] set (the `ticketlab` program sets it to itself), every `score`
//! and `build` call of a library is sent to a fresh `HOST plugin-host` process: the request on
//! its standard input, the raw output buffers back on its standard output. The host then checks
//! and converts them exactly as for a call in its own process, so both give the same results.
//! Without it (ticketlab used as a library, unit tests), calls run in the calling process.
//!
//! The child is the parent's to stop: it runs in a process group of its own (a Ctrl-C at the
//! terminal reaches the parent alone, which stops the run cleanly), it is killed when the call
//! takes longer than [`Runtime::plugin_timeout`] or a stop is requested, and it kills itself
//! when its parent dies, however the parent dies (Linux's parent-death signal).
//!
//! The messages are length-prefixed frames (a little-endian `u64` byte count, then the bytes):
//! first a JSON header, then the arrays as raw bytes in this machine's byte order. Parent and
//! child are the same program on the same machine, so no format beyond that is needed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ticketlab_api::runtime::Runtime;

use super::{Adapter, CallSite, Element, Layer, Returned, open_adapter};
use ticketlab_abi as abi;
use ticketlab_api::{Error, Result};

/// The environment variable that gives the child its parent's process id, so that it can tell
/// whether its parent died before it asked to die with it.
const PARENT_PID: &str = "TICKETLAB_PLUGIN_PARENT";

/// How often the parent looks at a running call (its end, its deadline, a stop request).
const POLL: Duration = Duration::from_millis(20);

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

/// A pruner's `score` in a child process of `runtime`'s host program.
pub(super) fn score(
    runtime: &Runtime,
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
    let (status, outputs) = exchange(runtime, call, &request, &arrays)?;
    Ok((status, outputs.try_into().map_err(|_| broken(call, "a wrong number of outputs"))?))
}

/// A dataset's `build` in a child process of `runtime`'s host program.
pub(super) fn build(
    runtime: &Runtime,
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
    let (status, outputs) = exchange(runtime, call, &request, &[])?;
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
    runtime: &Runtime,
    call: &CallSite,
    request: &Request,
    arrays: &[&[f32]],
) -> Result<(abi::Status, Vec<Returned>)> {
    let host = runtime.plugin_host.as_ref().expect("isolated calls have a host program");
    let mut command = Command::new(host);
    command
        .arg("plugin-host")
        .env(PARENT_PID, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|e| {
        call.error(format!("cannot start `{} plugin-host` to run it: {e}", host.display()))
    })?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let header = serde_json::to_vec(request).expect("a request serialises");
    let mut frames = vec![header];
    frames.extend(arrays.iter().map(|a| f32_bytes(a)));
    // The pipes are served by threads of their own, so that a child that never reads, never
    // answers or fills its stderr cannot block the parent, which watches the clock meanwhile.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        frames.iter().try_for_each(|f| write_frame(&mut input, f))
    });
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let waited = wait(&mut child, runtime);
    let written = writer.join().unwrap_or_else(|_| Err(std::io::ErrorKind::Other.into()));
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let status = match waited {
        Waited::Exited(status) => status,
        Waited::TimedOut(limit) => {
            return Err(call.error(format!(
                "the call did not return within {} s, so its process was killed and this stage fails; fix the plugin, or give it more time with --plugin-timeout SECONDS",
                limit.as_secs()
            )));
        }
        Waited::Stopped(step) => return Err(Error::Interrupted { step }),
        Waited::Lost(e) => return Err(call.error(format!("lost its process: {e}"))),
    };
    if !status.success() {
        return Err(crashed(call, &status, &stderr));
    }
    written.map_err(|e| call.error(format!("could not send the call to its process: {e}")))?;
    let mut answer = stdout.as_slice();
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

/// How a child's call ended.
enum Waited {
    /// The child exited by itself.
    Exited(std::process::ExitStatus),
    /// It ran past the limit and was killed.
    TimedOut(Duration),
    /// A stop was requested and the child was killed (a plugin call has no step: 0).
    Stopped(u64),
    /// Waiting for it failed.
    Lost(std::io::Error),
}

/// Waits for `child`, killing it at the runtime's time limit or stop request.
fn wait(child: &mut Child, runtime: &Runtime) -> Waited {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Waited::Exited(status),
            Ok(None) => {}
            Err(e) => return Waited::Lost(e),
        }
        let late = runtime.plugin_timeout.filter(|limit| start.elapsed() >= *limit);
        if late.is_some() || runtime.stop.is_requested() {
            let _ = child.kill();
            let _ = child.wait();
            return match late {
                Some(limit) => Waited::TimedOut(limit),
                None => Waited::Stopped(0),
            };
        }
        std::thread::sleep(POLL);
    }
}

/// Reads all of `pipe` on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
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
    die_with_parent();
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| Error::Internal(format!("reading the call: {e}")))?;
    let mut frames = input.as_slice();
    let request: Request = read_frame(&mut frames)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| Error::Internal("the call's header is not readable".into()))?;
    let (status, outputs): (abi::Status, Vec<Returned>) =
        match open_adapter(&request.library, &request.plugin)? {
            Adapter::Pruner(p) => {
                let mut arrays = Vec::with_capacity(request.layers.len() * 2);
                for _ in 0..request.layers.len() * 2 {
                    let bytes = read_frame(&mut frames)
                        .map_err(|_| Error::Internal("the call has too few arrays".into()))?;
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
        .map_err(|e| Error::Internal(format!("writing the answer: {e}")))
}

/// Makes this child die with the parent that started it, whatever kills the parent (Linux's
/// parent-death signal; a parent that died before the request is caught by comparing the
/// parent's id with the one it passed down).
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL));
        let parent = std::env::var(PARENT_PID).ok().and_then(|p| p.parse::<i32>().ok());
        if parent.is_some_and(|p| nix::unistd::getppid().as_raw() != p) {
            std::process::exit(1);
        }
    }
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
