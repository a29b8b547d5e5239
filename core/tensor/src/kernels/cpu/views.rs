//! Views as strided accesses: the logical axes of a luminal `ShapeTracker` as (size, stride,
//! offset, bound) and row-by-row iteration over several operands at once.

use std::ops::Range;

use luminal::op::InputTensor;
use luminal::shape::ShapeTracker;

/// One logical axis of a view: element `j` lives at buffer index `(j + offset) * stride`,
/// and is a zero (padding) unless `0 <= j + offset < bound` when `checked`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    pub(crate) size: usize,
    pub(crate) stride: isize,
    pub(crate) offset: isize,
    pub(crate) bound: isize,
    pub(crate) checked: bool,
}

pub(super) fn to_usize(e: luminal::shape::symbolic::Expression) -> usize {
    e.to_usize().expect("kernel views have concrete dims")
}

/// The logical axes of a (resolved) view.
pub(crate) fn axes_of(view: &ShapeTracker) -> Vec<Axis> {
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
            let (pad_before, pad_after) =
                (to_usize(view.padding[p].0), to_usize(view.padding[p].1));
            let (slice_start, slice_end) =
                (to_usize(view.slices[p].0), view.slices[p].1.to_usize().unwrap_or(usize::MAX));
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
pub(super) fn coalesce(shape: &[usize], operands: &[Vec<Axis>]) -> (Vec<usize>, Vec<Vec<Axis>>) {
    let mut shape_out: Vec<usize> = Vec::new();
    let mut ops_out: Vec<Vec<Axis>> = vec![Vec::new(); operands.len()];
    for i in 0..shape.len() {
        if shape[i] == 1 && operands.iter().all(|o| !o[i].checked && o[i].offset == 0) {
            continue; // a size-1 axis read at its start contributes nothing
        }
        let mergeable = !shape_out.is_empty()
            && operands.iter().zip(&ops_out).all(|(o, out)| {
                let (prev, cur) = (out.last().expect("same length"), &o[i]);
                !prev.checked
                    && !cur.checked
                    && cur.offset == 0
                    && prev.stride == cur.stride * cur.size as isize
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
pub(super) struct Row {
    pub(super) base: isize,
    pub(super) stride: isize,
    /// Valid inner indices are `lo..hi` (empty when an outer axis is out of bounds).
    pub(super) lo: usize,
    pub(super) hi: usize,
}

/// Calls `f` once per innermost row of `shape` that holds elements of `elements` (flat
/// positions in row-major order), in order, with the row's first flat position, each operand's
/// [`Row`] and the row's columns inside `elements`.
pub(super) fn for_each_row(
    shape: &[usize],
    operands: &[Vec<Axis>],
    elements: Range<usize>,
    mut f: impl FnMut(usize, &[Row], Range<usize>),
) {
    if elements.is_empty() {
        return;
    }
    let rank = shape.len();
    let inner = rank - 1;
    let n = shape[inner];
    let rows = elements.start / n..elements.end.div_ceil(n);
    // The outer index of the first row, last axis fastest.
    let mut idx = vec![0usize; inner];
    let mut rest = rows.start;
    for d in (0..inner).rev() {
        idx[d] = rest % shape[d];
        rest /= shape[d];
    }
    let mut row_buf: Vec<Row> = Vec::with_capacity(operands.len());
    for r in rows {
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
        let columns = elements.start.max(r * n) - r * n..elements.end.min((r + 1) * n) - r * n;
        f(r * n, &row_buf, columns);
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
pub(super) fn read(data: &[f32], row: &Row, j: usize) -> f32 {
    if j >= row.lo && j < row.hi {
        data[(row.base + j as isize * row.stride) as usize]
    } else {
        0.0
    }
}

pub(crate) fn vec_of<'a>(t: &'a InputTensor) -> &'a [f32] {
    t.borrowed().data.as_any().downcast_ref::<Vec<f32>>().expect("CPU tensors are Vec<f32>")
}

pub(super) fn logical_shape(view: &ShapeTracker) -> Vec<usize> {
    ticketlab_api::tensor::graph::view_dims(view)
}
