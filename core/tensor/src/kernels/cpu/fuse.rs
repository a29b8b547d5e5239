//! Fusion of elementwise chains: a connected group of elementwise ops whose intermediate
//! results nobody else reads becomes one [`FusedElementwise`] node that evaluates a small
//! program over the group's inputs, chunk by chunk, without allocating the intermediates.
//!
//! A group grows from its last op (the *root*) towards its producers. A producer joins when it
//! is an elementwise op, no one holds its id (a retrieved, kept or remapped node must keep its
//! buffer), every one of its consumers is already in the group, and every consumer reads it
//! through the identity view of the group's shape. So inside a group every value has the
//! group's logical shape, and only the inputs from outside keep their views (broadcasts,
//! slices, pads), which are read with the same strided machinery as the unfused kernels.
//! Scalar constants are folded into the program.
//!
//! Every op is computed with the same `f32` operation as its unfused kernel, in the same order,
//! so fused and unfused graphs give bit-identical results. The program's loops run sixteen
//! lanes wide on a CPU with AVX-512 (a release build targets every x86-64, four lanes): the same
//! operations, only more of them at once.

// The AVX-512 copy of the program's loops is called behind a run-time check of the CPU.
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::ops::Range;

use luminal::compiler_utils::{Compiler, ToIdsMut, move_outgoing_edge, move_references};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, ConstantValue, InputTensor, Operator};
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::algo::toposort;
use luminal::prelude::petgraph::visit::EdgeRef;
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use super::exp2::{exp2, exp2_slice};
use super::pool::fresh_out;
use super::strided::BinaryKind;
use super::views::{Axis, Row, axes_of, coalesce, for_each_row, read, vec_of};
use crate::kernels::threads;
use ticketlab_api::tensor::graph::{is_plain, tracker, view_dims};

/// Elements evaluated at a time: small enough that every register of a program stays in cache.
const CHUNK: usize = 256;

/// Ops in one group at most: each reads at most two inputs, and luminal numbers a node's inputs
/// with a `u8`.
const MAX_MEMBERS: usize = 64;

/// An elementwise operation of a fused program.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Code {
    /// A binary op, with the arithmetic of the unfused kernel.
    Binary(BinaryKind),
    Exp2,
    Log2,
    Sin,
    Sqrt,
    Recip,
}

impl Code {
    /// The code of an elementwise luminal op, and whether it takes two operands.
    fn of(op: &dyn Operator) -> Option<(Code, bool)> {
        let any = op.as_any();
        let code = if any.is::<op::Add>() {
            (Code::Binary(BinaryKind::Add), true)
        } else if any.is::<op::Mul>() {
            (Code::Binary(BinaryKind::Mul), true)
        } else if any.is::<op::LessThan>() {
            (Code::Binary(BinaryKind::LessThan), true)
        } else if any.is::<op::Mod>() {
            (Code::Binary(BinaryKind::Mod), true)
        } else if any.is::<op::Exp2>() {
            (Code::Exp2, false)
        } else if any.is::<op::Log2>() {
            (Code::Log2, false)
        } else if any.is::<op::Sin>() {
            (Code::Sin, false)
        } else if any.is::<op::Sqrt>() {
            (Code::Sqrt, false)
        } else if any.is::<op::Recip>() {
            (Code::Recip, false)
        } else {
            return None;
        };
        Some(code)
    }

    /// The same arithmetic as the unfused kernels: [`BinaryKind::apply`], luminal's unary ops.
    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Code::Binary(kind) => kind.apply(a, b),
            Code::Exp2 => exp2(a),
            Code::Log2 => a.log2(),
            Code::Sin => a.sin(),
            Code::Sqrt => a.sqrt(),
            Code::Recip => a.recip(),
        }
    }
}

/// Where an instruction reads an operand.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Src {
    /// The node's `i`-th input.
    Input(usize),
    /// The result of instruction `i`.
    Reg(usize),
    /// A folded scalar constant.
    Imm(f32),
}

/// One instruction: `code(a, b)` (`b` unused by unary codes).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Instr {
    code: Code,
    a: Src,
    b: Src,
}

/// A fused group: the program's last instruction is the output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FusedElementwise {
    program: Vec<Instr>,
    shape: Vec<usize>,
}

/// An operand of one chunk: a run of values or one value for all.
#[derive(Clone, Copy)]
enum Chunk<'a> {
    Values(&'a [f32]),
    Scalar(f32),
}

impl Chunk<'_> {
    #[inline(always)]
    fn at(&self, j: usize) -> f32 {
        match self {
            Chunk::Values(v) => v[j],
            Chunk::Scalar(s) => *s,
        }
    }
}

/// Writes `code(a, b)` for every element of `out`, with the arithmetic of [`Code::apply`]: one
/// loop per operand shape (the compiler moves the binary kind's `match` out of it; writing a
/// loop per kind measured no faster) and one per unary function, so that no element pays for a
/// dispatch.
///
/// On a CPU with AVX-512 the loops run from a copy compiled for it: the paper MLP's step is
/// 3-9% shorter (tests/bench/BENCHMARKS.md). Rust never fuses a multiply and an add by itself,
/// so the wider loops give the same bits.
fn run(code: Code, a: Chunk<'_>, b: Chunk<'_>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512, checked above.
        return unsafe { run_avx512(code, a, b, out) };
    }
    run_plain(code, a, b, out)
}

/// [`run_plain`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_avx512(code: Code, a: Chunk<'_>, b: Chunk<'_>, out: &mut [f32]) {
    run_plain(code, a, b, out)
}

/// [`run`]'s loops, inlined into each copy.
#[inline(always)]
fn run_plain(code: Code, a: Chunk<'_>, b: Chunk<'_>, out: &mut [f32]) {
    use Chunk::{Scalar, Values};
    let unary = |f: fn(f32) -> f32, x: &[f32], out: &mut [f32]| {
        out.iter_mut().zip(x).for_each(|(o, x)| *o = f(*x))
    };
    match (code, a, b) {
        (Code::Binary(k), Values(x), Values(y)) => {
            out.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (x, y))| *o = k.apply(*x, *y))
        }
        (Code::Binary(k), Values(x), Scalar(y)) => {
            out.iter_mut().zip(x).for_each(|(o, x)| *o = k.apply(*x, y))
        }
        (Code::Binary(k), Scalar(x), Values(y)) => {
            out.iter_mut().zip(y).for_each(|(o, y)| *o = k.apply(x, *y))
        }
        (Code::Exp2, Values(x), _) => exp2_slice(x, out),
        (Code::Log2, Values(x), _) => unary(f32::log2, x, out),
        (Code::Sin, Values(x), _) => unary(f32::sin, x, out),
        (Code::Sqrt, Values(x), _) => unary(f32::sqrt, x, out),
        (Code::Recip, Values(x), _) => unary(f32::recip, x, out),
        _ => out.iter_mut().enumerate().for_each(|(j, o)| *o = code.apply(a.at(j), b.at(j))),
    }
}

/// Fills `buf` with elements `from..from + buf.len()` of an input row.
fn load(data: &[f32], row: &Row, from: usize, buf: &mut [f32]) {
    let len = buf.len();
    if row.lo <= from && from + len <= row.hi && row.stride == 1 {
        let start = (row.base + from as isize) as usize;
        buf.copy_from_slice(&data[start..start + len]);
    } else if row.lo <= from && from + len <= row.hi && row.stride == 0 {
        buf.fill(data[row.base as usize]);
    } else {
        for (j, b) in buf.iter_mut().enumerate() {
            *b = read(data, row, from + j);
        }
    }
}

impl FusedElementwise {
    /// Its program in short (`fused[Mul,LessThan,Mul] 911x48`), for profiles.
    pub(super) fn describe(&self) -> String {
        let codes: Vec<String> = self
            .program
            .iter()
            .map(|i| match i.code {
                Code::Binary(kind) => format!("{kind:?}"),
                code => format!("{code:?}"),
            })
            .collect();
        let shape: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        format!("fused[{}] {}", codes.join(","), shape.join("x"))
    }
}

/// Runs `program` over `out.len()` elements, reading input `k` from `input(k)`, writing its
/// result to every element of `out`.
fn evaluate<'a>(
    program: &[Instr],
    input: impl Fn(usize) -> &'a [f32],
    regs: &mut [Vec<f32>],
    out: &mut [MaybeUninit<f32>],
) {
    let len = out.len();
    for (i, ins) in program.iter().enumerate() {
        let (done, rest) = regs.split_at_mut(i);
        let operand = |s: Src| match s {
            Src::Input(k) => Chunk::Values(&input(k)[..len]),
            Src::Reg(r) => Chunk::Values(&done[r][..len]),
            Src::Imm(v) => Chunk::Scalar(v),
        };
        run(ins.code, operand(ins.a), operand(ins.b), &mut rest[0][..len]);
    }
    for (o, &v) in out.iter_mut().zip(&regs[program.len() - 1][..len]) {
        o.write(v);
    }
}

/// Whether `axes` read a buffer in the row-major order of `shape` from its start, so that the
/// element at flat position `i` is the buffer's `i`-th.
fn row_major(shape: &[usize], axes: &[Axis]) -> bool {
    let mut stride = 1isize;
    for (&size, axis) in shape.iter().zip(axes).rev() {
        if axis.checked || axis.offset != 0 || (size > 1 && axis.stride != stride) {
            return false;
        }
        stride *= size as isize;
    }
    true
}

/// Where a chunk starting at flat position `at` reads input `k`: in place, or from its chunk
/// buffer.
fn chunk_inputs<'a>(
    in_place: &'a [bool],
    data: &'a [&'a [f32]],
    buffers: &'a [Vec<f32>],
    at: usize,
) -> impl Fn(usize) -> &'a [f32] {
    move |k| if in_place[k] { &data[k][at..] } else { &buffers[k] }
}

impl Operator for FusedElementwise {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let total: usize = self.shape.iter().product();
        let operands: Vec<_> = inp.iter().map(|(_, v)| axes_of(v)).collect();
        let data: Vec<&[f32]> = inp.iter().map(|(t, _)| vec_of(t)).collect();
        let (cshape, cops) = coalesce(&self.shape, &operands);
        // Inputs laid out as the output is are read in place; the others are gathered into a
        // chunk buffer each.
        let in_place: Vec<bool> =
            operands.iter().map(|axes| row_major(&self.shape, axes)).collect();
        let group = Group {
            program: &self.program,
            shape: &cshape,
            operands: &cops,
            data: &data,
            in_place: &in_place,
        };
        let work = total * (data.len() + 1);
        let out = fresh_out(threads(), work, total, &|elements, block| group.fill(elements, block));
        vec![Tensor::new(out)]
    }
}

/// A fused group's program over one call's inputs.
struct Group<'a> {
    program: &'a [Instr],
    /// The coalesced output shape and each input's axes over it.
    shape: &'a [usize],
    operands: &'a [Vec<Axis>],
    data: &'a [&'a [f32]],
    /// Whether each input is read where it lies (laid out as the output) rather than gathered.
    in_place: &'a [bool],
}

impl Group<'_> {
    /// Writes the output's `elements` (flat positions) into `block`, chunk by chunk; returns
    /// how many it wrote.
    fn fill(&self, elements: Range<usize>, block: &mut [MaybeUninit<f32>]) -> usize {
        let first = elements.start;
        let mut inputs = vec![vec![0.0f32; CHUNK]; self.data.len()];
        let mut regs = vec![vec![0.0f32; CHUNK]; self.program.len()];
        // Elements of `block` written, and elements gathered into the chunk buffers since.
        let (mut written, mut filled) = (0, 0);
        let mut flush = |inputs: &[Vec<f32>], written: &mut usize, len: usize| {
            let input = chunk_inputs(self.in_place, self.data, inputs, first + *written);
            evaluate(self.program, input, &mut regs, &mut block[*written..*written + len]);
            *written += len;
        };
        // A chunk is filled from as many rows as it takes: short rows (a softmax's 67 logits
        // beside their broadcast maximum) would otherwise pay the program's dispatch per row.
        for_each_row(self.shape, self.operands, elements, |_, row_views, columns| {
            let mut from = columns.start;
            while from < columns.end {
                let len = (CHUNK - filled).min(columns.end - from);
                for (((buf, d), row), &in_place) in
                    inputs.iter_mut().zip(self.data).zip(row_views).zip(self.in_place)
                {
                    if !in_place {
                        load(d, row, from, &mut buf[filled..filled + len]);
                    }
                }
                filled += len;
                from += len;
                if filled == CHUNK {
                    flush(&inputs, &mut written, CHUNK);
                    filled = 0;
                }
            }
        });
        if filled > 0 {
            flush(&inputs, &mut written, filled);
        }
        written
    }
}

/// Replaces groups of two or more connected elementwise ops with [`FusedElementwise`].
#[derive(Debug, Default)]
pub struct FusionPass;

/// An incoming data edge: (input order, source, source output, view).
type InEdge = (u8, NodeIndex, u8, ShapeTracker);

fn incoming(graph: &Graph, n: NodeIndex) -> Vec<InEdge> {
    let mut v: Vec<InEdge> = graph
        .graph
        .edges_directed(n, Direction::Incoming)
        .filter_map(|e| e.weight().as_data().map(|(i, o, view)| (i, e.source(), o, view)))
        .collect();
    v.sort_by_key(|e| e.0);
    v
}

/// The logical shape an elementwise node computes, if it can be a group member: binary ops take
/// their inputs' logical shape; unary ops map their input buffer as is, which is only safe to
/// fuse when that input is read through the identity view.
fn member_shape(graph: &Graph, n: NodeIndex) -> Option<Vec<usize>> {
    let (_, binary) = Code::of(graph.graph[n].as_ref())?;
    // An ordering (schedule) edge would be lost when the node is replaced.
    if graph.graph.edges_directed(n, Direction::Incoming).any(|e| e.weight().as_data().is_none()) {
        return None;
    }
    let inputs = incoming(graph, n);
    let first = inputs.first()?;
    if inputs.len() != if binary { 2 } else { 1 } || (!binary && !is_plain(&first.3)) {
        return None;
    }
    Some(view_dims(&first.3))
}

/// The value of a scalar constant read through `view`, when every element reads that value.
fn folded_constant(graph: &Graph, source: NodeIndex, view: &ShapeTracker) -> Option<f32> {
    let Some(op::Constant(ConstantValue::Float(v), _)) =
        graph.graph[source].as_any().downcast_ref::<op::Constant>()
    else {
        return None;
    };
    (!view.is_padded() && !view.is_sliced()).then_some(*v)
}

impl Compiler for FusionPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let held = super::held(graph, &mut remap);
        let Ok(order) = toposort(&graph.graph, None) else { return };
        let position: HashMap<NodeIndex, usize> =
            order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut taken: HashSet<NodeIndex> = HashSet::new();
        for &root in order.iter().rev() {
            if taken.contains(&root) || !graph.graph.contains_node(root) {
                continue;
            }
            let Some(shape) = member_shape(graph, root) else { continue };
            let members = grow(graph, root, &shape, &held, &taken);
            if members.len() < 2 {
                continue;
            }
            taken.extend(members.iter().copied());
            let mut members: Vec<NodeIndex> = members.into_iter().collect();
            members.sort_by_key(|n| position[n]);
            replace(graph, &members, root, shape, &mut remap);
        }
    }
}

/// The members of the group ending at `root`.
fn grow(
    graph: &Graph,
    root: NodeIndex,
    shape: &[usize],
    held: &HashSet<NodeIndex>,
    taken: &HashSet<NodeIndex>,
) -> HashSet<NodeIndex> {
    let mut members = HashSet::from([root]);
    let mut work = vec![root];
    while let Some(m) = work.pop() {
        for (_, p, _, view) in incoming(graph, m) {
            if members.len() == MAX_MEMBERS {
                return members;
            }
            if members.contains(&p) || taken.contains(&p) || held.contains(&p) {
                continue;
            }
            if !is_plain(&view)
                || view_dims(&view) != shape
                || member_shape(graph, p).as_deref() != Some(shape)
            {
                continue;
            }
            let read_only_here = graph.graph.edges_directed(p, Direction::Outgoing).all(|e| {
                members.contains(&e.target())
                    && e.weight()
                        .as_data()
                        .is_some_and(|(_, _, v)| is_plain(&v) && view_dims(&v) == shape)
            });
            if read_only_here {
                members.insert(p);
                work.push(p);
            }
        }
    }
    members
}

/// Builds the program of `members` (in topological order), adds the fused node in place of
/// `root` and removes the members.
fn replace<T: ToIdsMut>(
    graph: &mut Graph,
    members: &[NodeIndex],
    root: NodeIndex,
    shape: Vec<usize>,
    remap: &mut T,
) {
    let reg: HashMap<NodeIndex, usize> = members.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut externals: Vec<(NodeIndex, u8, ShapeTracker)> = Vec::new();
    let mut program = Vec::with_capacity(members.len());
    for &m in members {
        let (code, binary) = Code::of(graph.graph[m].as_ref()).expect("members are elementwise");
        let mut srcs = incoming(graph, m).into_iter().map(|(_, p, out, view)| {
            if let Some(&r) = reg.get(&p) {
                return Src::Reg(r);
            }
            if let Some(v) = folded_constant(graph, p, &view) {
                return Src::Imm(v);
            }
            // luminal's unary ops read their input buffer in order, whatever the edge says.
            let view = if binary { view } else { tracker(&shape) };
            let i = externals
                .iter()
                .position(|e| e.0 == p && e.1 == out && e.2 == view)
                .unwrap_or_else(|| {
                    externals.push((p, out, view));
                    externals.len() - 1
                });
            Src::Input(i)
        });
        let a = srcs.next().expect("an elementwise op has an input");
        let b = srcs.next().unwrap_or(Src::Imm(0.0));
        program.push(Instr { code, a, b });
    }
    let mut node = graph.add_op(FusedElementwise { program, shape });
    for (p, out, view) in externals {
        node = node.input(p, out, view);
    }
    let fused = node.finish();
    move_outgoing_edge(root, fused, &mut graph.graph);
    move_references(remap, &mut graph.no_delete, &mut graph.to_retrieve, root, fused);
    for &m in members {
        graph.graph.remove_node(m);
    }
}
