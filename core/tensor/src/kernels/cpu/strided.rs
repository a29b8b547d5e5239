//! Strided loops for the binary ops, reductions and copies that are not fused or contracted.

use luminal::compiler_utils::{Compiler, ToIdsMut};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, InputTensor, Operator};
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use super::pool::{filled_out, fresh_out};
use super::views::{Row, axes_of, coalesce, for_each_row, logical_shape, read, vec_of};
use crate::kernels::threads;

/// Binary operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum BinaryKind {
    Add,
    Mul,
    LessThan,
    Mod,
}

impl BinaryKind {
    #[inline(always)]
    pub(super) fn apply(self, a: f32, b: f32) -> f32 {
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
        let kind = self.0;
        let n = *cshape.last().expect("rank >= 1");
        let out = fresh_out(threads(), 3 * total, total, &|elements, block| {
            let (first, mut written) = (elements.start, 0);
            for_each_row(&cshape, &ops, elements, |start, rows, columns| {
                let dst = &mut block[start + columns.start - first..][..columns.len()];
                written += dst.len();
                let (ra, rb) = (rows[0], rows[1]);
                let full = |r: &Row| r.lo == 0 && r.hi == n;
                let from = |r: &Row| (r.base + (columns.start as isize) * r.stride) as usize;
                if full(&ra) && full(&rb) && ra.stride == 1 && rb.stride == 1 {
                    let (sa, sb) = (&a[from(&ra)..][..dst.len()], &b[from(&rb)..][..dst.len()]);
                    let pairs = dst.iter_mut().zip(sa.iter().zip(sb));
                    match kind {
                        BinaryKind::Add => pairs.for_each(|(d, (x, y))| _ = d.write(x + y)),
                        BinaryKind::Mul => pairs.for_each(|(d, (x, y))| _ = d.write(x * y)),
                        _ => pairs.for_each(|(d, (x, y))| _ = d.write(kind.apply(*x, *y))),
                    }
                } else if full(&ra) && full(&rb) && ra.stride == 1 && rb.stride == 0 {
                    let (sa, y) = (&a[from(&ra)..][..dst.len()], b[rb.base as usize]);
                    let pairs = dst.iter_mut().zip(sa);
                    match kind {
                        BinaryKind::Add => pairs.for_each(|(d, x)| _ = d.write(x + y)),
                        BinaryKind::Mul => pairs.for_each(|(d, x)| _ = d.write(x * y)),
                        _ => pairs.for_each(|(d, x)| _ = d.write(kind.apply(*x, y))),
                    }
                } else if full(&ra) && full(&rb) && ra.stride == 0 && rb.stride == 1 {
                    let (x, sb) = (a[ra.base as usize], &b[from(&rb)..][..dst.len()]);
                    dst.iter_mut().zip(sb).for_each(|(d, y)| _ = d.write(kind.apply(x, *y)));
                } else {
                    for (d, j) in dst.iter_mut().zip(columns) {
                        d.write(kind.apply(read(a, &ra, j), read(b, &rb, j)));
                    }
                }
            });
            written
        });
        vec![Tensor::new(out)]
    }
}

/// Copies a view into a contiguous buffer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StridedCopy;

impl Operator for StridedCopy {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        vec![Tensor::new(gather(vec_of(&inp[0].0), &inp[0].1))]
    }
}

/// The elements of `view` over `data`, in logical row-major order.
pub(super) fn gather(data: &[f32], view: &ShapeTracker) -> Vec<f32> {
    let shape = logical_shape(view);
    let total: usize = shape.iter().product();
    if shape.is_empty() {
        return vec![data[0]];
    }
    let (cshape, ops) = coalesce(&shape, &[axes_of(view)]);
    let n = *cshape.last().expect("rank >= 1");
    fresh_out(threads(), 2 * total, total, &|elements, block| {
        let (first, mut written) = (elements.start, 0);
        for_each_row(&cshape, &ops, elements, |start, rows, columns| {
            let r = rows[0];
            let dst = &mut block[start + columns.start - first..][..columns.len()];
            written += dst.len();
            if r.lo == 0 && r.hi == n && r.stride == 1 {
                dst.write_copy_of_slice(&data[r.base as usize + columns.start..][..dst.len()]);
            } else {
                for (d, j) in dst.iter_mut().zip(columns) {
                    d.write(read(data, &r, j));
                }
            }
        });
        written
    })
}

/// Sum or max over one axis of a view.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StridedReduce {
    axis: usize,
    max: bool,
}

impl Operator for StridedReduce {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let view = &inp[0].1;
        let shape = logical_shape(view);
        let data = vec_of(&inp[0].0);
        let owned;
        let src: &[f32] = if ticketlab_api::tensor::graph::is_plain(view)
            && data.len() == shape.iter().product::<usize>()
        {
            data
        } else {
            owned = gather(data, view);
            &owned
        };
        let pre: usize = shape[..self.axis].iter().product();
        let len = shape[self.axis];
        let post: usize = shape[self.axis + 1..].iter().product();
        let init = if self.max { f32::NEG_INFINITY } else { 0.0 };
        // Each output row `i` (the `post` elements after index `i` of the leading axes) is its
        // own sum, so rows split over the threads sum as they would alone.
        let out = filled_out(threads(), src.len(), pre * post, post, init, &|rows, block| {
            for (i, dst) in rows.zip(block.chunks_exact_mut(post)) {
                let input = &src[i * len * post..(i + 1) * len * post];
                if post == 1 {
                    dst[0] = if self.max {
                        input.iter().copied().fold(init, f32::max)
                    } else {
                        input.iter().sum()
                    };
                    continue;
                }
                for row in input.chunks_exact(post) {
                    if self.max {
                        dst.iter_mut().zip(row).for_each(|(d, x)| *d = d.max(*x));
                    } else {
                        dst.iter_mut().zip(row).for_each(|(d, x)| *d += x);
                    }
                }
            }
        });
        vec![Tensor::new(out)]
    }
}

/// Swaps luminal's interpreted binary ops, reductions and copies for strided kernels, and its
/// `exp2` for [`super::exp2`]'s.
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
            } else if any.is::<op::Exp2>() {
                Some(Box::new(super::exp2::Exp2))
            } else {
                None
            };
            if let Some(r) = replacement {
                graph.graph[n] = r;
            }
        }
    }
}
