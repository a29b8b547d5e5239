//! Row narrowing: where a graph reads a node's output only in part along one axis, compute
//! only that part.
//!
//! The paper code's transformer reads its logits at the last position only, yet as written it
//! computes the queries, the attention output and the MLP of every position. A backward
//! analysis finds, for every node, which rows of one axis of its buffer its readers need: a
//! slice view asks for its range; an elementwise op, or a reduction over another axis, asks
//! its inputs for the rows it must produce itself, through the views on its input edges
//! (permutations, broadcasts, and the reshapes of `linear`, which merge the position axis into
//! the rows of a matrix, so that the rows kept are every `mid`-th block). A node is narrowed
//! when every reader asks for the same rows and it is neither a leaf nor kept, retrieved or
//! held by the caller. The rewrite rebuilds the narrowed nodes on narrowed inputs: every
//! element still computed has the same operands, summed in the same order, so the values are
//! bit for bit those of the unnarrowed graph. Run on the forward graph before autograd, the
//! gradient graph comes out of the narrowed forward: a weight gradient then sums the same
//! non-zero terms over fewer rows, which the matrix kernel may group differently, so it can
//! differ from the unnarrowed one in its last bits.

use std::any::TypeId;
use std::collections::HashMap;

use luminal::graph::NodeIndex;
use luminal::op;
use luminal::prelude::petgraph::Direction;
use luminal::prelude::petgraph::visit::EdgeRef;
use luminal::shape::ShapeTracker;
use luminal::shape::symbolic::Expression;

use super::contraction::data_inputs;
use ticketlab_api::Result;
use ticketlab_api::tensor::graph::{GraphBuilder, Var, tracker, view_dims};

/// Rows of one buffer axis: index `i` of `axis` is kept when `(i / inner) % mid` lies in
/// `start..end` (a plain slice has `inner = 1` and `mid` equal to the axis length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rows {
    axis: usize,
    inner: usize,
    mid: usize,
    start: usize,
    end: usize,
}

impl Rows {
    /// How many of an axis of length `len` are kept.
    fn kept(&self, len: usize) -> usize {
        len / (self.mid * self.inner) * (self.end - self.start) * self.inner
    }

    fn on(self, axis: usize) -> Self {
        Self { axis, ..self }
    }
}

/// A builder op of one input.
type Unary = fn(&mut GraphBuilder, Var) -> Var;
/// A builder op of two inputs of the same shape.
type Binary = fn(&mut GraphBuilder, Var, Var) -> Result<Var>;
/// A builder reduction over an axis.
type Reduction = fn(&mut GraphBuilder, Var, usize) -> Result<Var>;

/// How a node computes its output from its inputs, as far as narrowing is concerned, with the
/// builder op that rebuilds it on narrowed inputs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Output element `i` from input element `i` (through the edge view).
    Unary(Unary),
    /// Output element `i` from input elements `i` (through the edge views).
    Binary(Binary),
    /// A sum or maximum over this input axis.
    Reduce(Reduction, usize),
    /// Anything else (leaves, constants, compiled kernels): never narrowed.
    Other,
}

fn kind(g: &GraphBuilder, node: NodeIndex) -> Kind {
    let any = g.cx.graph[node].as_any();
    if let Some(op::SumReduce(axis)) = any.downcast_ref::<op::SumReduce>() {
        return Kind::Reduce(GraphBuilder::sum_reduce, *axis);
    }
    if let Some(op::MaxReduce(axis)) = any.downcast_ref::<op::MaxReduce>() {
        return Kind::Reduce(GraphBuilder::max_reduce, *axis);
    }
    let op = any.type_id();
    let binary: [(TypeId, Binary); 4] = [
        (TypeId::of::<op::Add>(), GraphBuilder::add),
        (TypeId::of::<op::Mul>(), GraphBuilder::mul),
        (TypeId::of::<op::LessThan>(), GraphBuilder::less_than),
        (TypeId::of::<op::Mod>(), GraphBuilder::modulo),
    ];
    let unary: [(TypeId, Unary); 6] = [
        (TypeId::of::<op::Log2>(), GraphBuilder::log2),
        (TypeId::of::<op::Exp2>(), GraphBuilder::exp2),
        (TypeId::of::<op::Sin>(), GraphBuilder::sin),
        (TypeId::of::<op::Sqrt>(), GraphBuilder::sqrt),
        (TypeId::of::<op::Recip>(), GraphBuilder::recip),
        (TypeId::of::<op::Contiguous>(), GraphBuilder::contiguous),
    ];
    if let Some(&(_, f)) = binary.iter().find(|(id, _)| *id == op) {
        return Kind::Binary(f);
    }
    unary.iter().find(|(id, _)| *id == op).map_or(Kind::Other, |&(_, f)| Kind::Unary(f))
}

/// The input axis that output axis `axis` of a node of `kind` reads.
fn input_axis(kind: Kind, axis: usize) -> usize {
    match kind {
        Kind::Reduce(_, reduced) if axis >= reduced => axis + 1,
        _ => axis,
    }
}

/// What a request for rows of a view's logical axis asks of the viewed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Through {
    /// These rows of the buffer.
    Rows(Rows),
    /// Nothing along that axis: the view broadcasts it.
    Broadcast,
    /// Not expressible as rows of one buffer axis.
    Opaque,
}

fn dim(e: Expression) -> usize {
    e.to_usize().expect("graph dims are concrete")
}

/// The slice of dims entry `p` of `view`, if it keeps less than the whole entry.
fn partial_slice(view: &ShapeTracker, p: usize) -> Option<(usize, usize)> {
    let len = dim(view.dims[p]);
    let start = dim(view.slices[p].0);
    let end = view.slices[p].1.to_usize().unwrap_or(usize::MAX).min(len);
    (start > 0 || end < len).then_some((start, end))
}

/// Maps `rows` of logical axis `q` of `view` (the view's own slices ignored) onto the buffer
/// of shape `buffer` it reads: the view's real (not broadcast) entries, in buffer order, must
/// factor the buffer, and the rows' block must fall inside one buffer axis.
fn through_view(view: &ShapeTracker, buffer: &[usize], q: usize, rows: Rows) -> Through {
    if view.is_padded() {
        return Through::Opaque;
    }
    let p = view.indexes[q];
    if view.fake[p] {
        return Through::Broadcast;
    }
    if partial_slice(view, p).is_some() {
        return Through::Opaque;
    }
    let real: Vec<usize> = (0..view.dims.len()).filter(|&i| !view.fake[i]).collect();
    let size = |entries: &[usize]| entries.iter().map(|&i| dim(view.dims[i])).product::<usize>();
    if size(&real) != buffer.iter().product::<usize>() {
        return Through::Opaque;
    }
    let after: Vec<usize> = real.iter().copied().filter(|&i| i > p).collect();
    let block = size(&after) * rows.inner;
    let mut stride: usize = buffer.iter().product();
    for (axis, &len) in buffer.iter().enumerate() {
        stride /= len;
        let span = stride * len;
        if len > 1 && block >= stride && block < span {
            if !block.is_multiple_of(stride) || !span.is_multiple_of(block * rows.mid) {
                return Through::Opaque;
            }
            return Through::Rows(Rows { axis, inner: block / stride, ..rows });
        }
    }
    Through::Opaque
}

/// Whether every input of `node` can give the inputs of `rows` of its output as rows of its
/// buffer (or as a broadcast).
fn reads_rows(g: &GraphBuilder, node: NodeIndex, rows: Rows) -> bool {
    let q = input_axis(kind(g, node), rows.axis);
    data_inputs(&g.cx, node).iter().all(|(source, view)| {
        through_view(view, g.node_shape(*source), q, rows.on(q)) != Through::Opaque
    })
}

/// What `reader`, reading its source through `edge_view`, needs of that source,
/// given what the reader must produce (`None`: all of it).
fn demand(
    g: &GraphBuilder,
    reader: NodeIndex,
    edge_view: &ShapeTracker,
    source_shape: &[usize],
    reader_needs: Option<Rows>,
) -> Option<Rows> {
    let sliced: Vec<usize> =
        (0..edge_view.dims.len()).filter(|&p| partial_slice(edge_view, p).is_some()).collect();
    let (q, rows) = match reader_needs {
        Some(rows) => {
            let k = kind(g, reader);
            if matches!(k, Kind::Other) || !sliced.is_empty() {
                return None;
            }
            (input_axis(k, rows.axis), rows)
        }
        // A reader that needs all of its output still reads a slice of its input.
        None => {
            let [p] = sliced[..] else { return None };
            let q = edge_view.indexes.iter().position(|&i| i == p)?;
            let (start, end) = partial_slice(edge_view, p)?;
            let rows = Rows { axis: q, inner: 1, mid: dim(edge_view.dims[p]), start, end };
            (q, rows)
        }
    };
    let mut unsliced = *edge_view;
    let p = unsliced.indexes[q];
    unsliced.slices[p] = (0.into(), i32::MAX.into());
    match through_view(&unsliced, source_shape, q, rows.on(q)) {
        Through::Rows(r) => Some(r),
        Through::Broadcast | Through::Opaque => None,
    }
}

/// Narrows every node whose readers need only some rows of it; `held` are node ids the caller
/// keeps (never narrowed). Returns the number of nodes narrowed.
pub(crate) fn narrow(g: &mut GraphBuilder, held: &[NodeIndex]) -> Result<usize> {
    let order = luminal::prelude::petgraph::algo::toposort(&g.cx.graph, None)
        .map_err(|_| ticketlab_api::Error::shape("row narrowing", "the graph has a cycle"))?;
    // 1. What each node's readers need of it, readers first.
    let mut needs: HashMap<NodeIndex, Rows> = HashMap::new();
    for &node in order.iter().rev() {
        let fixed = held.contains(&node)
            || g.cx.no_delete.contains(&node)
            || g.cx.to_retrieve.contains(&node)
            || matches!(kind(g, node), Kind::Other);
        if fixed {
            continue;
        }
        let shape = g.node_shape(node).to_vec();
        let mut asked: Option<Rows> = None;
        let mut readers = 0;
        for e in g.cx.graph.edges_directed(node, Direction::Outgoing) {
            readers += 1;
            let Some((_, output, view)) = e.weight().as_data() else {
                asked = None;
                break;
            };
            let wanted = (output == 0)
                .then(|| demand(g, e.target(), &view, &shape, needs.get(&e.target()).copied()))
                .flatten();
            match (wanted, asked) {
                (Some(w), None) if readers == 1 => asked = Some(w),
                (Some(w), Some(a)) if w == a => {}
                _ => {
                    asked = None;
                    break;
                }
            }
        }
        let asked = asked.filter(|r| r.kept(shape[r.axis]) < shape[r.axis]);
        if let Some(rows) = asked.filter(|&r| reads_rows(g, node, r)) {
            needs.insert(node, rows);
        }
    }
    if needs.is_empty() {
        return Ok(0);
    }
    // 2. Rebuild the narrowed nodes on narrowed inputs, inputs first.
    let mut narrowed: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    g.set_layer("row narrowing");
    for &node in &order {
        let Some(&rows) = needs.get(&node) else { continue };
        let k = kind(g, node);
        let q = input_axis(k, rows.axis);
        let mut inputs = Vec::new();
        for (source, view) in data_inputs(&g.cx, node) {
            let source_shape = g.node_shape(source).to_vec();
            let len = view_dims(&view)[q];
            let kept = rows.kept(len);
            let input = match through_view(&view, &source_shape, q, rows.on(q)) {
                Through::Broadcast => Var { node: source, view: resized(&view, q, kept) },
                Through::Rows(r) => {
                    let buffer = match narrowed.get(&source) {
                        Some(&new) if needs.get(&source) == Some(&r) => new,
                        // A source that others read whole: copy the rows this node reads.
                        _ => {
                            let whole = Var { node: source, view: tracker(&source_shape) };
                            let part = select(g, whole, r.axis, r)?;
                            g.contiguous(part).node
                        }
                    };
                    Var { node: buffer, view: resized(&view, q, kept) }
                }
                Through::Opaque => unreachable!("narrowed nodes read every input as rows"),
            };
            inputs.push(input);
        }
        let new = rebuild(g, k, &inputs)?;
        narrowed.insert(node, new.node);
    }
    // 3. Readers that were not rebuilt read a slice: they now read the narrowed buffer whole.
    for (&old, &new) in &narrowed {
        let rows = needs[&old];
        let edges: Vec<_> =
            g.cx.graph
                .edges_directed(old, Direction::Outgoing)
                .filter(|e| !narrowed.contains_key(&e.target()))
                .filter_map(|e| e.weight().as_data().map(|d| (e.id(), e.target(), d)))
                .collect();
        for (edge, reader, (input, output, view)) in edges {
            let p = (0..view.dims.len())
                .find(|&p| partial_slice(&view, p).is_some())
                .expect("a reader that was not rebuilt reads a slice");
            let q = view.indexes.iter().position(|&i| i == p).expect("sliced entries are read");
            let mut unsliced = view;
            unsliced.slices[p] = (0.into(), i32::MAX.into());
            let kept = rows.kept(view_dims(&unsliced)[q]);
            let new_view = resized(&unsliced, q, kept);
            g.cx.graph.remove_edge(edge);
            g.cx.graph.add_edge(
                new,
                reader,
                luminal::graph::Dependency::Data {
                    input_order: input,
                    output_order: output,
                    shape: new_view,
                },
            );
        }
    }
    for old in narrowed.keys() {
        g.remove_node(*old);
    }
    Ok(narrowed.len())
}

/// `view` with logical axis `q` resized to `len` (a narrowed buffer, or a broadcast).
fn resized(view: &ShapeTracker, q: usize, len: usize) -> ShapeTracker {
    let mut v = *view;
    let p = v.indexes[q];
    v.dims[p] = len.into();
    if v.slices[p].1.to_usize().is_some_and(|end| end != i32::MAX as usize) {
        v.slices[p].1 = len.into();
    }
    v
}

/// The kept rows of logical axis `q` of `x`, as views and copies of the whole input.
fn select(g: &mut GraphBuilder, x: Var, q: usize, rows: Rows) -> Result<Var> {
    let shape = x.shape();
    if rows.inner == 1 && rows.mid == shape[q] {
        return g.slice(x, q, rows.start, rows.end);
    }
    let mut split = shape.clone();
    split.splice(q..=q, [shape[q] / (rows.mid * rows.inner), rows.mid, rows.inner]);
    let blocks = g.reshape(x, &split)?;
    let kept = g.slice(blocks, q + 1, rows.start, rows.end)?;
    let mut merged = shape;
    merged[q] = rows.kept(merged[q]);
    g.reshape(kept, &merged)
}

/// The op of a node of kind `k` applied to new inputs.
fn rebuild(g: &mut GraphBuilder, k: Kind, inputs: &[Var]) -> Result<Var> {
    match (k, inputs) {
        (Kind::Unary(f), &[a]) => Ok(f(g, a)),
        (Kind::Binary(f), &[a, b]) => f(g, a, b),
        (Kind::Reduce(f, axis), &[a]) => f(g, a, axis),
        _ => Err(ticketlab_api::Error::shape(
            "row narrowing",
            format!("cannot rebuild {k:?} on {} inputs", inputs.len()),
        )),
    }
}
