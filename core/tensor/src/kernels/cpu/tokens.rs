//! Products with one-hot token inputs as gathers and scatter-adds.
//!
//! A token task feeds its inputs as one-hot rows `[n, n_ctx, vocab]`, and an embedding is a
//! product with them (or with their sum over the context, the token counts). Multiplying by a
//! one-hot matrix only selects rows, so the forward product becomes a gather of table rows and
//! the weight gradient (the transposed one-hot times the output gradient) a scatter-add, read
//! from the token indices the session feeds beside the one-hot leaf. Sums run over the tokens
//! of an example in context order, and over examples in order; threads split the output's rows
//! (or columns), never a sum: the same numbers at every thread count.

use std::ops::Range;

use luminal::compiler_utils::{Compiler, ToIdsMut, move_outgoing_edge, move_references};
use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, InputTensor, Operator};
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use super::gemm::{Strided, copy_rows};
use super::pool::filled_out;
use super::views::vec_of;
use crate::contraction::{Operand, data_inputs, product};
use crate::kernels::threads;
use ticketlab_api::tensor::graph::{is_plain, view_dims};

/// A one-hot input leaf and the leaf that holds its token indices (`n * n_ctx` values, as
/// `f32`, in example then context order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLeaves {
    /// The one-hot leaf, `[n, n_ctx, vocab]`.
    pub one_hot: NodeIndex,
    /// The indices leaf.
    pub indices: NodeIndex,
    /// Examples.
    pub n: usize,
    /// Tokens per example.
    pub n_ctx: usize,
    /// One-hot width.
    pub vocab: usize,
}

/// A matrix read from a buffer with strides: element `(i, j)` at `i * rows + j * cols`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Strides {
    rows: usize,
    cols: usize,
}

impl From<Operand> for Strides {
    fn from(o: Operand) -> Self {
        Self { rows: o.row_stride, cols: o.col_stride }
    }
}

/// `out[r, j] = sum over the tokens t of row r of table[t, j]`: a one-hot (or count) matrix
/// with `rows` rows times a `vocab x width` table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GatherRows {
    rows: usize,
    per_row: usize,
    vocab: usize,
    width: usize,
    table: Strides,
    out: Strides,
}

/// `out[v, j] = sum over the tokens t == v (row r) of src[r, j]`: the transposed one-hot (or
/// count) matrix times a `rows x width` matrix.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScatterAddRows {
    rows: usize,
    per_row: usize,
    vocab: usize,
    width: usize,
    src: Strides,
    out: Strides,
}

/// The token index of `value`, checked against the vocabulary.
fn token(value: f32, vocab: usize) -> usize {
    let t = value as usize;
    assert!(
        value >= 0.0 && t < vocab && t as f32 == value,
        "token index {value} is not one of the {vocab} tokens"
    );
    t
}

/// How an output of `rows x width` elements, laid out by `out`, is cut into blocks for the
/// threads: by rows when it is row-major (units of `width` elements), else by columns (it is
/// then column-major: units of `rows` elements).
#[derive(Clone, Copy)]
struct Cut {
    by_rows: bool,
    unit: usize,
}

impl Cut {
    fn of(out: Strides, rows: usize, width: usize) -> Cut {
        if out.cols == 1 {
            Cut { by_rows: true, unit: width }
        } else {
            Cut { by_rows: false, unit: rows }
        }
    }

    /// The rows and columns of the whole output that a block of `units` holds.
    fn rows_and_columns(
        self,
        units: Range<usize>,
        rows: usize,
        width: usize,
    ) -> (Range<usize>, Range<usize>) {
        if self.by_rows { (units, 0..width) } else { (0..rows, units) }
    }

    /// Fills `block` through `sum`, which adds into a row-major buffer of the block's rows,
    /// `columns` wide: the block itself when it is cut by rows; else a buffer written into the
    /// block transposed, so that the sums run along contiguous rows either way.
    fn fill(self, block: &mut [f32], columns: usize, sum: impl FnOnce(&mut [f32])) {
        if columns == 0 {
            return;
        }
        if self.by_rows {
            sum(block);
        } else {
            let mut buffer = vec![0.0f32; block.len()];
            sum(&mut buffer);
            transpose_into(&buffer, columns, block);
        }
    }
}

impl Operator for GatherRows {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let (indices, table) = (vec_of(&inp[0].0), vec_of(&inp[1].0));
        // A table whose rows are strided (the transformer's `d_model x vocab` embedding, read
        // by columns) is read many times over: copied once into contiguous rows, each lookup
        // adds a contiguous row. The same values in the same order, so the same bits.
        let mut contiguous = Vec::new();
        let (table, strides) = if self.table.cols != 1 && self.rows * self.per_row > self.vocab {
            let view = Strided {
                offset: 0,
                rows: self.table.rows as isize,
                cols: self.table.cols as isize,
            };
            copy_rows(table, view, self.vocab, self.width, &mut contiguous);
            (&contiguous[..], Strides { rows: self.width, cols: 1 })
        } else {
            (table, self.table)
        };
        let cut = Cut::of(self.out, self.rows, self.width);
        let work = self.rows * self.per_row * self.width;
        let len = self.rows * self.width;
        let out = filled_out(threads(), work, len, cut.unit, 0.0, &|units, block| {
            let (rows, columns) = cut.rows_and_columns(units, self.rows, self.width);
            cut.fill(block, columns.len(), |buffer| {
                for (r, row) in rows.zip(buffer.chunks_exact_mut(columns.len())) {
                    for &t in &indices[r * self.per_row..][..self.per_row] {
                        let first = token(t, self.vocab) * strides.rows;
                        add_strided(row, table, first + columns.start * strides.cols, strides.cols);
                    }
                }
            });
        });
        vec![Tensor::new(out)]
    }
}

impl Operator for ScatterAddRows {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let (indices, src) = (vec_of(&inp[0].0), vec_of(&inp[1].0));
        let cut = Cut::of(self.out, self.vocab, self.width);
        let work = self.rows * self.per_row * self.width;
        let len = self.vocab * self.width;
        // Each block scans every example, in order, and adds those of its own rows (or columns)
        // of the table's gradient: every element sums its terms in order of examples, as alone.
        let out = filled_out(threads(), work, len, cut.unit, 0.0, &|units, block| {
            let (rows, columns) = cut.rows_and_columns(units, self.vocab, self.width);
            cut.fill(block, columns.len(), |buffer| {
                for (r, tokens) in indices.chunks_exact(self.per_row).enumerate().take(self.rows) {
                    let first = r * self.src.rows + columns.start * self.src.cols;
                    for &t in tokens {
                        let v = token(t, self.vocab);
                        if rows.contains(&v) {
                            let at = (v - rows.start) * columns.len();
                            let row = &mut buffer[at..][..columns.len()];
                            add_strided(row, src, first, self.src.cols);
                        }
                    }
                }
            });
        });
        vec![Tensor::new(out)]
    }
}

/// `row[k] += data[first + k * stride]` for every `k`: a contiguous, vectorised loop when
/// `stride` is 1.
fn add_strided(row: &mut [f32], data: &[f32], first: usize, stride: usize) {
    if stride == 1 {
        let len = row.len();
        row.iter_mut().zip(&data[first..][..len]).for_each(|(o, x)| *o += x);
    } else {
        for (k, o) in row.iter_mut().enumerate() {
            *o += data[first + k * stride];
        }
    }
}

/// Writes the row-major `rows` (rows of `w`) into `block` transposed: column `j` of `rows` is
/// row `j` of `block`.
fn transpose_into(rows: &[f32], w: usize, block: &mut [f32]) {
    let height = rows.len().checked_div(w).unwrap_or(0);
    for (j, column) in block.chunks_exact_mut(height.max(1)).enumerate().take(w) {
        for (o, row) in column.iter_mut().zip(rows.chunks_exact(w)) {
            *o = row[j];
        }
    }
}

/// Rewrites products with the one-hot leaf of [`TokenLeaves`] (or its sum over the context)
/// into [`GatherRows`] and [`ScatterAddRows`].
#[derive(Debug)]
pub struct TokenPass(pub TokenLeaves);

/// How an operand reads the token input: `Some(tokens per row)` when it is the one-hot leaf
/// as `[n * n_ctx, vocab]` (one per row) or the counts `[n, vocab]` (`n_ctx` per row), row-major.
fn token_rows(graph: &Graph, t: &TokenLeaves, o: &Operand) -> Option<usize> {
    if !o.is_row_major() || o.cols != t.vocab {
        return None;
    }
    if o.node == t.one_hot && o.rows == t.n * t.n_ctx {
        return Some(1);
    }
    let Some(op::SumReduce(1)) =
        graph.graph.node_weight(o.node)?.as_any().downcast_ref::<op::SumReduce>()
    else {
        return None;
    };
    let [(source, view)] = data_inputs(graph, o.node)[..] else { return None };
    (source == t.one_hot
        && is_plain(&view)
        && view_dims(&view) == [t.n, t.n_ctx, t.vocab]
        && o.rows == t.n)
        .then_some(t.n_ctx)
}

impl Compiler for TokenPass {
    fn compile<T: ToIdsMut>(&self, graph: &mut Graph, mut remap: T) {
        let t = self.0;
        let nodes: Vec<NodeIndex> = graph.graph.node_indices().collect();
        for sum in nodes {
            let Some(p) = product(graph, sum) else { continue };
            let (l, r) = (p.lhs, p.rhs);
            // The product's buffer is `l · r`, `[l.rows, r.cols]` row-major.
            let row_major = Strides { rows: r.cols, cols: 1 };
            let transposed = Strides { rows: 1, cols: r.cols };
            let rewrite: (Box<dyn Operator>, NodeIndex) =
                if let Some(per_row) = token_rows(graph, &t, &l) {
                    (
                        Box::new(GatherRows {
                            rows: l.rows,
                            per_row,
                            vocab: t.vocab,
                            width: r.cols,
                            table: r.into(),
                            out: row_major,
                        }),
                        r.node,
                    )
                } else if let Some(per_row) = token_rows(graph, &t, &r.transposed()) {
                    let table = l.transposed();
                    (
                        Box::new(GatherRows {
                            rows: r.cols,
                            per_row,
                            vocab: t.vocab,
                            width: l.rows,
                            table: table.into(),
                            out: transposed,
                        }),
                        l.node,
                    )
                } else if let Some(per_row) = token_rows(graph, &t, &l.transposed()) {
                    (
                        Box::new(ScatterAddRows {
                            rows: l.cols,
                            per_row,
                            vocab: t.vocab,
                            width: r.cols,
                            src: r.into(),
                            out: row_major,
                        }),
                        r.node,
                    )
                } else if let Some(per_row) = token_rows(graph, &t, &r) {
                    let src = l.transposed();
                    (
                        Box::new(ScatterAddRows {
                            rows: r.rows,
                            per_row,
                            vocab: t.vocab,
                            width: l.rows,
                            src: src.into(),
                            out: transposed,
                        }),
                        l.node,
                    )
                } else {
                    continue;
                };
            let (kernel, other) = rewrite;
            let indices_view = ticketlab_api::tensor::graph::tracker(&[t.n * t.n_ctx]);
            let other_view = data_inputs(graph, p.mul)
                .into_iter()
                .find(|(n, _)| *n == other)
                .expect("an operand of the product")
                .1;
            let new = graph.graph.add_node(kernel);
            graph.graph.add_edge(
                t.indices,
                new,
                luminal::graph::Dependency::Data {
                    input_order: 0,
                    output_order: 0,
                    shape: indices_view,
                },
            );
            graph.graph.add_edge(
                other,
                new,
                luminal::graph::Dependency::Data {
                    input_order: 1,
                    output_order: 0,
                    shape: other_view,
                },
            );
            move_outgoing_edge(sum, new, &mut graph.graph);
            move_references(&mut remap, &mut graph.no_delete, &mut graph.to_retrieve, sum, new);
            graph.graph.remove_node(sum);
            graph.graph.remove_node(p.mul);
        }
    }
}
