//! CPU kernels as luminal compiler passes.
//!
//! luminal's stock `CPUCompiler` is both slow (every element goes through a symbolic index
//! interpreter; its 2-D matmul pattern never fires) and wrong for some ops, so it is never
//! used. [`compile`] runs our passes instead:
//!
//! - [`RemoveDeadNodes`]: drops branches nobody reads (luminal runs every node).
//! - [`ContractionPass`]: every `Mul -> SumReduce` contraction (forward and backward layouts,
//!   any batch axes, transposes as strides) becomes one strided `matrixmultiply::sgemm` call per
//!   batch entry.
//! - [`StridedPass`]: the remaining binary ops, reductions and copies become strided loops that
//!   read views directly (broadcasts as stride 0, slices and pads as bounds), with adjacent axes
//!   coalesced and a plain slice loop whenever every operand is contiguous.
//!
//! Unary ops keep luminal's implementation: the builder guarantees their inputs are
//! contiguous, and luminal maps the buffer in place.

use luminal::compiler_utils::{Compiler, ToIdsMut, move_outgoing_edge, move_references};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, InputTensor, Operator};
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::visit::EdgeRef;

/// Where compiled graphs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our CPU kernels.
    Cpu,
    /// luminal_cuda's compiler (feature `cuda`): inputs and outputs stay host buffers; its
    /// copy pass moves them to and from the device.
    Cuda,
}

impl Backend {
    /// `TICKETLAB_BACKEND=cuda` selects CUDA (with the `cuda` feature); the default is CPU.
    pub fn from_env() -> Self {
        match std::env::var("TICKETLAB_BACKEND").as_deref() {
            Ok("cuda") if cfg!(feature = "cuda") => Backend::Cuda,
            _ => Backend::Cpu,
        }
    }

    /// The name recorded in manifests and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }
}

/// Runs every kernel pass of the selected [`Backend`] on `graph`, keeping `remap`'s node ids
/// valid.
pub fn compile(graph: &mut Graph, remap: &mut Vec<NodeIndex>) {
    let mut ids: Vec<&mut NodeIndex> = remap.iter_mut().collect();
    match Backend::from_env() {
        Backend::Cpu => graph.compile((RemoveDeadNodes, ContractionPass, StridedPass), &mut ids),
        #[cfg(feature = "cuda")]
        Backend::Cuda => graph.compile((RemoveDeadNodes, luminal_cuda::CudaCompiler::<f32>::default()), &mut ids),
        #[cfg(not(feature = "cuda"))]
        Backend::Cuda => unreachable!("Backend::from_env selects CUDA only with the `cuda` feature"),
    }
}

/// Removes nodes whose output nobody reads: luminal executes every node in the graph, kept or
/// not, so an unused branch would cost a full computation per step.
#[derive(Debug, Default)]
pub struct RemoveDeadNodes;

impl Compiler for RemoveDeadNodes {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let held: std::collections::HashSet<NodeIndex> = remap.to_ids_mut().into_iter().map(|id| *id).collect();
        loop {
            let dead: Vec<NodeIndex> = graph
                .graph
                .node_indices()
                .filter(|&n| {
                    graph.graph.edges_directed(n, Direction::Outgoing).next().is_none()
                        && !graph.no_delete.contains(&n)
                        && !graph.to_retrieve.contains(&n)
                        && !held.contains(&n)
                })
                .collect();
            if dead.is_empty() {
                break;
            }
            for n in dead {
                graph.graph.remove_node(n);
            }
        }
    }
}

// ---- views as strided accesses ---------------------------------------------------------

/// One logical axis of a view: element `j` lives at buffer index `(j + offset) * stride`,
/// and is a zero (padding) unless `0 <= j + offset < bound` when `checked`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    size: usize,
    stride: isize,
    offset: isize,
    bound: isize,
    checked: bool,
}

fn to_usize(e: luminal::shape::symbolic::Expression) -> usize {
    e.to_usize().expect("kernel views have concrete dims")
}

/// The logical axes of a (resolved) view.
fn axes_of(view: &ShapeTracker) -> Vec<Axis> {
    let n = view.dims.len();
    let mut ustrides = vec![0isize; n];
    let mut acc = 1isize;
    for p in (0..n).rev() {
        ustrides[p] = acc;
        if !view.fake[p] {
            acc *= to_usize(view.dims[p]) as isize;
        }
    }
    view.indexes
        .iter()
        .map(|&p| {
            let dim = to_usize(view.dims[p]);
            let (pad_before, pad_after) = (to_usize(view.padding[p].0), to_usize(view.padding[p].1));
            let (slice_start, slice_end) = (to_usize(view.slices[p].0), view.slices[p].1.to_usize().unwrap_or(usize::MAX));
            let size = (dim + pad_before + pad_after).min(slice_end) - slice_start;
            let offset = slice_start as isize - pad_before as isize;
            let fake = view.fake[p];
            Axis {
                size,
                stride: if fake { 0 } else { ustrides[p] },
                offset: if fake { 0 } else { offset },
                bound: dim as isize,
                checked: !fake && (offset < 0 || size as isize + offset > dim as isize),
            }
        })
        .collect()
}

/// Merges adjacent axes that every operand walks as one (row-major, unchecked).
fn coalesce(shape: &[usize], operands: &[Vec<Axis>]) -> (Vec<usize>, Vec<Vec<Axis>>) {
    let mut shape_out: Vec<usize> = Vec::new();
    let mut ops_out: Vec<Vec<Axis>> = vec![Vec::new(); operands.len()];
    for i in 0..shape.len() {
        if shape[i] == 1 && !operands.iter().any(|o| o[i].checked) {
            continue; // size-1 axes contribute nothing
        }
        let mergeable = !shape_out.is_empty()
            && operands.iter().zip(&ops_out).all(|(o, out)| {
                let (prev, cur) = (out.last().expect("same length"), &o[i]);
                !prev.checked && !cur.checked && cur.offset == 0 && prev.stride == cur.stride * cur.size as isize
            });
        if mergeable {
            let last = shape_out.len() - 1;
            shape_out[last] *= shape[i];
            for (o, out) in operands.iter().zip(ops_out.iter_mut()) {
                let prev = out.last_mut().expect("same length");
                // Element (j, k) lived at (j + off) * stride + k * inner: the merged axis keeps
                // the inner stride, so the offset scales by the inner axis's size.
                prev.offset *= o[i].size as isize;
                prev.size *= o[i].size;
                prev.stride = o[i].stride;
            }
        } else {
            shape_out.push(shape[i]);
            for (o, out) in operands.iter().zip(ops_out.iter_mut()) {
                out.push(o[i]);
            }
        }
    }
    if shape_out.is_empty() {
        shape_out.push(1);
        for out in ops_out.iter_mut() {
            out.push(Axis { size: 1, stride: 0, offset: 0, bound: 1, checked: false });
        }
    }
    (shape_out, ops_out)
}

/// Where one operand's innermost row starts and which of its elements are real.
#[derive(Clone, Copy)]
struct Row {
    base: isize,
    stride: isize,
    /// Valid inner indices are `lo..hi` (empty when an outer axis is out of bounds).
    lo: usize,
    hi: usize,
}

/// Calls `f` once per innermost row of `shape` with each operand's [`Row`].
fn for_each_row(shape: &[usize], operands: &[Vec<Axis>], mut f: impl FnMut(usize, &[Row])) {
    let rank = shape.len();
    let inner = rank - 1;
    let n = shape[inner];
    let rows: usize = shape[..inner].iter().product();
    let mut idx = vec![0usize; inner];
    let mut row_buf: Vec<Row> = Vec::with_capacity(operands.len());
    for r in 0..rows {
        row_buf.clear();
        for o in operands {
            let mut base = 0isize;
            let mut valid = true;
            for (a, &j) in o[..inner].iter().zip(&idx) {
                let c = j as isize + a.offset;
                if a.checked && (c < 0 || c >= a.bound) {
                    valid = false;
                }
                base += c * a.stride;
            }
            let a = o[inner];
            let (lo, hi) = if !valid {
                (0, 0)
            } else if a.checked {
                let lo = (-a.offset).max(0) as usize;
                let hi = (a.bound - a.offset).clamp(0, n as isize) as usize;
                (lo.min(hi), hi)
            } else {
                (0, n)
            };
            row_buf.push(Row { base: base + a.offset * a.stride, stride: a.stride, lo, hi });
        }
        f(r * n, &row_buf);
        for d in (0..inner).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[inline(always)]
fn read(data: &[f32], row: &Row, j: usize) -> f32 {
    if j >= row.lo && j < row.hi { data[(row.base + j as isize * row.stride) as usize] } else { 0.0 }
}

fn vec_of<'a>(t: &'a InputTensor) -> &'a [f32] {
    t.borrowed().data.as_any().downcast_ref::<Vec<f32>>().expect("CPU tensors are Vec<f32>")
}

fn logical_shape(view: &ShapeTracker) -> Vec<usize> {
    super::graph::view_dims(view)
}

// ---- strided elementwise, reduce and copy ops ------------------------------------------

/// Binary operations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BinaryKind {
    Add,
    Mul,
    LessThan,
    Mod,
}

impl BinaryKind {
    #[inline(always)]
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Mul => a * b,
            BinaryKind::LessThan => (a < b) as i32 as f32,
            BinaryKind::Mod => a % b,
        }
    }
}

/// A binary op over two strided views.
#[derive(Debug, Clone, PartialEq)]
struct StridedBinary(BinaryKind);

impl Operator for StridedBinary {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let shape = logical_shape(&inp[0].1);
        let (cshape, ops) = coalesce(&shape, &[axes_of(&inp[0].1), axes_of(&inp[1].1)]);
        let (a, b) = (vec_of(&inp[0].0), vec_of(&inp[1].0));
        let total: usize = shape.iter().product();
        let mut out = vec![0.0f32; total];
        let kind = self.0;
        let n = *cshape.last().expect("rank >= 1");
        for_each_row(&cshape, &ops, |start, rows| {
            let dst = &mut out[start..start + n];
            let (ra, rb) = (rows[0], rows[1]);
            let full = |r: &Row| r.lo == 0 && r.hi == n;
            if full(&ra) && full(&rb) && ra.stride == 1 && rb.stride == 1 {
                let (sa, sb) = (&a[ra.base as usize..][..n], &b[rb.base as usize..][..n]);
                match kind {
                    BinaryKind::Add => dst.iter_mut().zip(sa.iter().zip(sb)).for_each(|(d, (x, y))| *d = x + y),
                    BinaryKind::Mul => dst.iter_mut().zip(sa.iter().zip(sb)).for_each(|(d, (x, y))| *d = x * y),
                    _ => dst.iter_mut().zip(sa.iter().zip(sb)).for_each(|(d, (x, y))| *d = kind.apply(*x, *y)),
                }
            } else if full(&ra) && full(&rb) && ra.stride == 1 && rb.stride == 0 {
                let (sa, y) = (&a[ra.base as usize..][..n], b[rb.base as usize]);
                match kind {
                    BinaryKind::Add => dst.iter_mut().zip(sa).for_each(|(d, x)| *d = x + y),
                    BinaryKind::Mul => dst.iter_mut().zip(sa).for_each(|(d, x)| *d = x * y),
                    _ => dst.iter_mut().zip(sa).for_each(|(d, x)| *d = kind.apply(*x, y)),
                }
            } else if full(&ra) && full(&rb) && ra.stride == 0 && rb.stride == 1 {
                let (x, sb) = (a[ra.base as usize], &b[rb.base as usize..][..n]);
                dst.iter_mut().zip(sb).for_each(|(d, y)| *d = kind.apply(x, *y));
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = kind.apply(read(a, &ra, j), read(b, &rb, j));
                }
            }
        });
        vec![Tensor::new(out)]
    }
}

/// Copies a view into a contiguous buffer.
#[derive(Debug, Clone, PartialEq)]
struct StridedCopy;

impl Operator for StridedCopy {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        vec![Tensor::new(gather(vec_of(&inp[0].0), &inp[0].1))]
    }
}

/// The elements of `view` over `data`, in logical row-major order.
fn gather(data: &[f32], view: &ShapeTracker) -> Vec<f32> {
    let shape = logical_shape(view);
    let total: usize = shape.iter().product();
    if shape.is_empty() {
        return vec![data[0]];
    }
    let (cshape, ops) = coalesce(&shape, &[axes_of(view)]);
    let n = *cshape.last().expect("rank >= 1");
    let mut out = vec![0.0f32; total];
    for_each_row(&cshape, &ops, |start, rows| {
        let r = rows[0];
        let dst = &mut out[start..start + n];
        if r.lo == 0 && r.hi == n && r.stride == 1 {
            dst.copy_from_slice(&data[r.base as usize..][..n]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = read(data, &r, j);
            }
        }
    });
    out
}

/// Sum or max over one axis of a view.
#[derive(Debug, Clone, PartialEq)]
struct StridedReduce {
    axis: usize,
    max: bool,
}

impl Operator for StridedReduce {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let view = &inp[0].1;
        let shape = logical_shape(view);
        let data = vec_of(&inp[0].0);
        let owned;
        let src: &[f32] = if super::graph::is_plain(view) && data.len() == shape.iter().product::<usize>() {
            data
        } else {
            owned = gather(data, view);
            &owned
        };
        let pre: usize = shape[..self.axis].iter().product();
        let len = shape[self.axis];
        let post: usize = shape[self.axis + 1..].iter().product();
        let init = if self.max { f32::NEG_INFINITY } else { 0.0 };
        let mut out = vec![init; pre * post];
        for i in 0..pre {
            let dst = &mut out[i * post..(i + 1) * post];
            let block = &src[i * len * post..(i + 1) * len * post];
            if post == 1 {
                dst[0] = if self.max {
                    block.iter().copied().fold(init, f32::max)
                } else {
                    block.iter().sum()
                };
                continue;
            }
            for row in block.chunks_exact(post) {
                if self.max {
                    dst.iter_mut().zip(row).for_each(|(d, x)| *d = d.max(*x));
                } else {
                    dst.iter_mut().zip(row).for_each(|(d, x)| *d += x);
                }
            }
        }
        vec![Tensor::new(out)]
    }
}

/// Swaps luminal's interpreted binary ops, reductions and copies for strided kernels.
#[derive(Debug, Default)]
pub struct StridedPass;

impl Compiler for StridedPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, _remap: T) {
        let nodes: Vec<NodeIndex> = graph.graph.node_indices().collect();
        for n in nodes {
            let any = graph.graph[n].as_any();
            let replacement: Option<Box<dyn Operator>> = if any.is::<op::Add>() {
                Some(Box::new(StridedBinary(BinaryKind::Add)))
            } else if any.is::<op::Mul>() {
                Some(Box::new(StridedBinary(BinaryKind::Mul)))
            } else if any.is::<op::LessThan>() {
                Some(Box::new(StridedBinary(BinaryKind::LessThan)))
            } else if any.is::<op::Mod>() {
                Some(Box::new(StridedBinary(BinaryKind::Mod)))
            } else if let Some(op::SumReduce(axis)) = any.downcast_ref::<op::SumReduce>() {
                Some(Box::new(StridedReduce { axis: *axis, max: false }))
            } else if let Some(op::MaxReduce(axis)) = any.downcast_ref::<op::MaxReduce>() {
                Some(Box::new(StridedReduce { axis: *axis, max: true }))
            } else if any.is::<op::Contiguous>() {
                Some(Box::new(StridedCopy))
            } else {
                None
            };
            if let Some(r) = replacement {
                graph.graph[n] = r;
            }
        }
    }
}

// ---- contractions to sgemm -------------------------------------------------------------

/// `C[.., M, N] = sum_K A[.., M, K] B[.., K, N]` over arbitrary strided views of the Mul's
/// operands, where `axis` is the contracted axis of the Mul's logical shape.
#[derive(Debug, Clone, PartialEq)]
struct Sgemm {
    axis: usize,
}

/// Axis roles in a contraction.
struct ContractionPlan {
    m: Option<usize>,
    n: Option<usize>,
    batch: Vec<usize>,
}

/// Classifies the axes of a Mul's logical shape; `None` if it is not a plain contraction.
fn plan_contraction(a: &[Axis], b: &[Axis], k: usize) -> Option<ContractionPlan> {
    if a.iter().chain(b).any(|x| x.checked) || a[k].stride == 0 || b[k].stride == 0 {
        return None;
    }
    let mut plan = ContractionPlan { m: None, n: None, batch: Vec::new() };
    for i in (0..a.len()).filter(|&i| i != k) {
        match (a[i].stride != 0 || a[i].size == 1, b[i].stride != 0 || b[i].size == 1) {
            (true, false) if plan.m.is_none() => plan.m = Some(i),
            (false, true) if plan.n.is_none() => plan.n = Some(i),
            (true, true) => plan.batch.push(i),
            _ => return None,
        }
    }
    Some(plan)
}

impl Operator for Sgemm {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let (va, vb) = (axes_of(&inp[0].1), axes_of(&inp[1].1));
        let shape = logical_shape(&inp[0].1);
        let plan = plan_contraction(&va, &vb, self.axis).expect("checked when compiled");
        let (a, b) = (vec_of(&inp[0].0), vec_of(&inp[1].0));
        // Output: the logical shape without the contracted axis, row-major.
        let out_axes: Vec<usize> = (0..shape.len()).filter(|&i| i != self.axis).collect();
        let mut out_strides = vec![0isize; shape.len()];
        let mut acc = 1isize;
        for &i in out_axes.iter().rev() {
            out_strides[i] = acc;
            acc *= shape[i] as isize;
        }
        let mut out = vec![0.0f32; acc as usize];
        let size = |ax: Option<usize>| ax.map_or(1, |i| shape[i]);
        let stride = |v: &[Axis], ax: Option<usize>| ax.map_or(0, |i| v[i].stride);
        let (m, n, k) = (size(plan.m), size(plan.n), shape[self.axis]);
        let batches: usize = plan.batch.iter().map(|&i| shape[i]).product();
        // Slices that start past 0 (within bounds) shift each operand's first element.
        let start = |v: &[Axis]| -> isize { v.iter().map(|x| x.offset * x.stride).sum() };
        let (start_a, start_b) = (start(&va), start(&vb));
        let mut idx = vec![0usize; plan.batch.len()];
        for _ in 0..batches {
            let offset = |strides: &dyn Fn(usize) -> isize| -> isize {
                plan.batch.iter().zip(&idx).map(|(&ax, &j)| strides(ax) * j as isize).sum()
            };
            let (oa, ob, oc) = (start_a + offset(&|i| va[i].stride), start_b + offset(&|i| vb[i].stride), offset(&|i| out_strides[i]));
            // SAFETY: every index sgemm touches, base + (i < m) * rs + (j < k) * cs, lies
            // inside the buffers: the strides come from views whose extents were checked
            // against these buffers when luminal built them, and no axis is padded or sliced.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr().offset(oa),
                    stride(&va, plan.m),
                    va[self.axis].stride,
                    b.as_ptr().offset(ob),
                    vb[self.axis].stride,
                    stride(&vb, plan.n),
                    0.0,
                    out.as_mut_ptr().offset(oc),
                    plan.m.map_or(0, |i| out_strides[i]),
                    plan.n.map_or(0, |i| out_strides[i]),
                );
            }
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[plan.batch[d]] {
                    break;
                }
                idx[d] = 0;
            }
        }
        vec![Tensor::new(out)]
    }
}

/// Fuses `Mul -> SumReduce` contractions into [`Sgemm`].
#[derive(Debug, Default)]
pub struct ContractionPass;

impl Compiler for ContractionPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let nodes: Vec<NodeIndex> = graph.graph.node_indices().collect();
        for sum in nodes {
            let Some(op::SumReduce(axis)) = graph.graph[sum].as_any().downcast_ref::<op::SumReduce>().cloned() else {
                continue;
            };
            let Some(edge) = graph.graph.edges_directed(sum, Direction::Incoming).next() else { continue };
            let mul = edge.source();
            let Some((_, _, sum_view)) = edge.weight().as_data() else { continue };
            let mul_consumers = graph.graph.edges_directed(mul, Direction::Outgoing).count();
            if !graph.graph[mul].as_any().is::<op::Mul>()
                || mul_consumers != 1
                || graph.no_delete.contains(&mul)
                || !super::graph::is_plain(&sum_view)
            {
                continue;
            }
            let mut inputs: Vec<(u8, NodeIndex, u8, ShapeTracker)> = graph
                .graph
                .edges_directed(mul, Direction::Incoming)
                .filter_map(|e| e.weight().as_data().map(|(i, o, v)| (i, e.source(), o, v)))
                .collect();
            inputs.sort_by_key(|x| x.0);
            let (va, vb) = (axes_of(&inputs[0].3), axes_of(&inputs[1].3));
            if plan_contraction(&va, &vb, axis).is_none() {
                continue;
            }
            let fused = graph
                .add_op(Sgemm { axis })
                .input(inputs[0].1, inputs[0].2, inputs[0].3)
                .input(inputs[1].1, inputs[1].2, inputs[1].3)
                .finish();
            move_outgoing_edge(sum, fused, &mut graph.graph);
            move_references(&mut remap, &mut graph.no_delete, &mut graph.to_retrieve, sum, fused);
            graph.graph.remove_node(sum);
            graph.graph.remove_node(mul);
        }
    }
}
