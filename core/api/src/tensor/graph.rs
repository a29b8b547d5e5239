//! Building luminal graphs with shapes chosen at run time.
//!
//! luminal 0.2.0's typed API fixes shapes in types, which cannot express widths and depths read
//! from an experiment file. [`GraphBuilder`] builds nodes directly from luminal's primitive ops
//! with untyped [`ShapeTracker`] views instead. Two invariants keep the graph easy to
//! differentiate and to compile:
//!
//! - every node's output is a contiguous buffer whose shape the builder records, and
//! - views (permute, expand, slice, pad, reshape) live only on edges, as [`Var`]s.
//!
//! Unary ops in luminal map the raw buffer and ignore the edge view, so the builder makes
//! their input contiguous first whenever the view is not the identity.
//!
//! Items marked hidden (the luminal graph, nodes, views) are for the engine's passes and
//! kernels, not for architectures, which see only [`GraphBuilder`]'s operations and [`Var`].

use std::collections::HashMap;

use luminal::graph::{Graph, NodeIndex};
use luminal::op::{self, ConstantValue};
use luminal::shape::ShapeTracker;
use luminal::shape::symbolic::Expression;

use crate::{Error, Result};

/// A view of a graph node's output: the node and the [`ShapeTracker`] through which a consumer
/// reads it. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    #[doc(hidden)]
    pub node: NodeIndex,
    #[doc(hidden)]
    pub view: ShapeTracker,
}

impl Var {
    /// The logical shape.
    pub fn shape(&self) -> Vec<usize> {
        view_dims(&self.view)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.view.len()
    }
}

/// The logical dimensions of a resolved view.
///
/// Computed here rather than with `ShapeTracker::shape`, which in luminal 0.2.0 subtracts the
/// slice start before clamping to the slice end (`(dim - start).min(end)`), overstating the
/// size of slices that start after 0 and end before the dim.
#[doc(hidden)]
pub fn view_dims(view: &ShapeTracker) -> Vec<usize> {
    let n = |e: Expression| e.to_usize().expect("graph dims are concrete");
    view.indexes
        .iter()
        .map(|&p| {
            let padded = n(view.dims[p]) + n(view.padding[p].0) + n(view.padding[p].1);
            let end = view.slices[p].1.to_usize().unwrap_or(usize::MAX);
            padded.min(end) - n(view.slices[p].0)
        })
        .collect()
}

/// Whether reading through `view` is the same as reading the buffer in order.
#[doc(hidden)]
pub fn is_plain(view: &ShapeTracker) -> bool {
    view.is_contiguous() && !view.is_sliced() && !view.is_padded()
}

/// A tracker for a contiguous buffer of shape `dims`.
#[doc(hidden)]
pub fn tracker(dims: &[usize]) -> ShapeTracker {
    let dims: Vec<Expression> = dims.iter().map(|&d| Expression::from(d)).collect();
    ShapeTracker::new(&dims)
}

/// Builds a luminal graph. The graph lives in a `Box` that is never moved: luminal's
/// `Constant` ops keep a raw pointer into it.
pub struct GraphBuilder {
    #[doc(hidden)]
    pub cx: Box<Graph>,
    shapes: HashMap<NodeIndex, Vec<usize>>,
    /// Name of the layer being built, for error messages.
    layer: String,
}

impl Default for GraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self { cx: Box::new(Graph::new()), shapes: HashMap::new(), layer: "graph".into() }
    }

    /// Names the layer being built; shape errors name it.
    pub fn set_layer(&mut self, name: impl Into<String>) {
        self.layer = name.into();
    }

    /// The recorded output shape of `node`.
    #[doc(hidden)]
    pub fn node_shape(&self, node: NodeIndex) -> &[usize] {
        &self.shapes[&node]
    }

    /// Removes a node and its edges (graph passes that replace nodes).
    #[doc(hidden)]
    pub fn remove_node(&mut self, node: NodeIndex) {
        self.cx.graph.remove_node(node);
        self.shapes.remove(&node);
    }

    fn add_node(
        &mut self,
        op: impl op::Operator + 'static,
        inputs: &[Var],
        out_shape: Vec<usize>,
    ) -> NodeIndex {
        let mut new = self.cx.add_op(op);
        for v in inputs {
            new = new.input(v.node, 0, v.view);
        }
        let id = new.finish();
        self.shapes.insert(id, out_shape);
        id
    }

    fn var(&self, node: NodeIndex) -> Var {
        Var { node, view: tracker(&self.shapes[&node]) }
    }

    /// A leaf whose data is set from the host (inputs, parameters, masks).
    pub fn input(&mut self, name: &str, shape: &[usize]) -> Var {
        let label = format!("{name} Load");
        let message = format!("no data was set for graph input `{name}`");
        let id = self.add_node(
            op::Function(label, Box::new(move |_| panic!("{message}"))),
            &[],
            shape.to_vec(),
        );
        self.var(id)
    }

    /// A constant tensor (e.g. an attention mask), stored in the graph.
    pub fn tensor_constant(&mut self, name: &str, value: &crate::tensor::HostTensor) -> Var {
        let v = self.input(name, &value.shape);
        self.cx.set_tensor(v.node, 0, luminal::tensor::Tensor::new(value.data.clone()));
        self.cx.no_delete.insert(v.node);
        v
    }

    /// Multiplies `x` `[.., K]` by a 2-D matrix `w` `[K, N]`, flattening the leading axes so
    /// the product is a single sgemm.
    pub fn linear(&mut self, x: Var, w: Var) -> Result<Var> {
        let sx = x.shape();
        let lead: Vec<usize> = sx[..sx.len() - 1].to_vec();
        let rows: usize = lead.iter().product();
        let flat = if sx.len() == 2 { x } else { self.reshape(x, &[rows, sx[sx.len() - 1]])? };
        let y = self.matmul(flat, w)?;
        if sx.len() == 2 {
            return Ok(y);
        }
        let mut out = lead;
        out.push(y.shape()[1]);
        self.reshape(y, &out)
    }

    /// A scalar constant broadcast to `shape`.
    pub fn constant(&mut self, value: f32, shape: &[usize]) -> Var {
        let dyn_map = &self.cx.dyn_map as *const _;
        let id = self.add_node(op::Constant(ConstantValue::Float(value), dyn_map), &[], vec![]);
        let mut view = tracker(&[]);
        for (i, &d) in shape.iter().enumerate() {
            view.expand(i, Expression::from(d));
        }
        Var { node: id, view }
    }

    fn same_shape(&self, what: &str, a: &Var, b: &Var) -> Result<Vec<usize>> {
        let (sa, sb) = (a.shape(), b.shape());
        if sa != sb {
            return Err(Error::shape(
                &self.layer,
                format!(
                    "{what} of shapes {sa:?} and {sb:?}; broadcast explicitly with `broadcast_to`"
                ),
            ));
        }
        Ok(sa)
    }

    fn binary(
        &mut self,
        what: &str,
        op: impl op::Operator + 'static,
        a: Var,
        b: Var,
    ) -> Result<Var> {
        let shape = self.same_shape(what, &a, &b)?;
        let id = self.add_node(op, &[a, b], shape);
        Ok(self.var(id))
    }

    fn unary(&mut self, op: impl op::Operator + 'static, a: Var) -> Var {
        let a = self.contiguous_if_needed(a);
        let id = self.add_node(op, &[a], a.shape());
        self.var(id)
    }

    /// Materialises a view into a new contiguous buffer.
    pub fn contiguous(&mut self, a: Var) -> Var {
        let id = self.add_node(op::Contiguous, &[a], a.shape());
        self.var(id)
    }

    /// `a` itself if its view is the identity, else a contiguous copy.
    pub fn contiguous_if_needed(&mut self, a: Var) -> Var {
        if is_plain(&a.view) { a } else { self.contiguous(a) }
    }

    /// A copy of a sliced view: luminal's reductions size their loops with
    /// `ShapeTracker::shape`, which is wrong for slices (see [`view_dims`]).
    fn unsliced(&mut self, a: Var) -> Var {
        if a.view.is_sliced() { self.contiguous(a) } else { a }
    }

    // ---- primitive ops -------------------------------------------------------------------

    /// Elementwise sum.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary("add", op::Add, a, b)
    }

    /// Elementwise product.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary("mul", op::Mul, a, b)
    }

    /// Elementwise `a < b` as 1.0 / 0.0 (no gradient).
    pub fn less_than(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary("less_than", op::LessThan, a, b)
    }

    /// Elementwise `a mod b` with the sign of `a` (Rust's `%`); differentiable almost everywhere.
    pub fn modulo(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary("mod", op::Mod, a, b)
    }

    /// Elementwise base-2 logarithm.
    pub fn log2(&mut self, a: Var) -> Var {
        self.unary(op::Log2, a)
    }

    /// Elementwise 2^x.
    pub fn exp2(&mut self, a: Var) -> Var {
        self.unary(op::Exp2, a)
    }

    /// Elementwise sine.
    pub fn sin(&mut self, a: Var) -> Var {
        self.unary(op::Sin, a)
    }

    /// Elementwise square root.
    pub fn sqrt(&mut self, a: Var) -> Var {
        self.unary(op::Sqrt, a)
    }

    /// Elementwise reciprocal.
    pub fn recip(&mut self, a: Var) -> Var {
        self.unary(op::Recip, a)
    }

    fn check_axis(&self, what: &str, a: &Var, axis: usize) -> Result<()> {
        if axis >= a.rank() {
            return Err(Error::shape(
                &self.layer,
                format!("{what} over axis {axis} of a tensor of shape {:?}", a.shape()),
            ));
        }
        Ok(())
    }

    /// Sum over `axis` (the axis is removed).
    pub fn sum_reduce(&mut self, a: Var, axis: usize) -> Result<Var> {
        self.check_axis("sum", &a, axis)?;
        let a = self.unsliced(a);
        let mut shape = a.shape();
        shape.remove(axis);
        let id = self.add_node(op::SumReduce(axis), &[a], shape);
        Ok(self.var(id))
    }

    /// Maximum over `axis` (the axis is removed).
    pub fn max_reduce(&mut self, a: Var, axis: usize) -> Result<Var> {
        self.check_axis("max", &a, axis)?;
        let a = self.unsliced(a);
        let mut shape = a.shape();
        shape.remove(axis);
        let id = self.add_node(op::MaxReduce(axis), &[a], shape);
        Ok(self.var(id))
    }

    // ---- views ---------------------------------------------------------------------------

    /// Reorders axes: output axis `i` is input axis `axes[i]`.
    pub fn permute(&mut self, a: Var, axes: &[usize]) -> Result<Var> {
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        if sorted != (0..a.rank()).collect::<Vec<_>>() {
            return Err(Error::shape(
                &self.layer,
                format!("permutation {axes:?} of a tensor of shape {:?}", a.shape()),
            ));
        }
        let mut view = a.view;
        view.permute(axes);
        Ok(Var { node: a.node, view })
    }

    /// Swaps the last two axes.
    pub fn transpose(&mut self, a: Var) -> Result<Var> {
        let r = a.rank();
        if r < 2 {
            return Err(Error::shape(
                &self.layer,
                format!("transpose of a tensor of shape {:?}", a.shape()),
            ));
        }
        let mut axes: Vec<usize> = (0..r).collect();
        axes.swap(r - 1, r - 2);
        self.permute(a, &axes)
    }

    /// Inserts a broadcast axis of size `n` at `axis` (no copy).
    pub fn expand(&mut self, a: Var, axis: usize, n: usize) -> Result<Var> {
        if axis > a.rank() || a.rank() >= 6 {
            return Err(Error::shape(
                &self.layer,
                format!(
                    "expand at axis {axis} of a tensor of shape {:?} (at most 6 dims)",
                    a.shape()
                ),
            ));
        }
        let mut view = a.view;
        view.expand(axis, Expression::from(n));
        Ok(Var { node: a.node, view })
    }

    /// Broadcasts `a` to `shape` by inserting leading axes: `a`'s shape must be a suffix of
    /// `shape`.
    pub fn broadcast_to(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let s = a.shape();
        if s.len() > shape.len() || shape[shape.len() - s.len()..] != s[..] {
            return Err(Error::shape(&self.layer, format!("cannot broadcast {s:?} to {shape:?}")));
        }
        let mut v = a;
        for (i, &d) in shape[..shape.len() - s.len()].iter().enumerate() {
            v = self.expand(v, i, d)?;
        }
        Ok(v)
    }

    /// Takes `start..end` of `axis`.
    pub fn slice(&mut self, a: Var, axis: usize, start: usize, end: usize) -> Result<Var> {
        self.check_axis("slice", &a, axis)?;
        let dims = a.shape();
        if start > end || end > dims[axis] {
            return Err(Error::shape(
                &self.layer,
                format!("slice {start}..{end} of axis {axis} of shape {dims:?}"),
            ));
        }
        let a = if a.view.is_padded() { self.contiguous(a) } else { a };
        let mut view = a.view;
        let ranges: Vec<(Expression, Expression)> = dims
            .iter()
            .enumerate()
            .map(
                |(i, &d)| if i == axis { (start.into(), end.into()) } else { (0.into(), d.into()) },
            )
            .collect();
        view.slice(&ranges);
        Ok(Var { node: a.node, view })
    }

    /// Pads `axis` with `before` and `after` zeros.
    pub fn pad(&mut self, a: Var, axis: usize, before: usize, after: usize) -> Result<Var> {
        self.check_axis("pad", &a, axis)?;
        // luminal ignores padding on broadcast axes and cannot pad a sliced view: copy first.
        let broadcast = a.view.fake[a.view.indexes[axis]];
        let a = if a.view.is_sliced() || broadcast { self.contiguous(a) } else { a };
        let mut view = a.view;
        let padding: Vec<(Expression, Expression)> = (0..a.rank())
            .map(|i| if i == axis { (before.into(), after.into()) } else { (0.into(), 0.into()) })
            .collect();
        view.pad(&padding);
        Ok(Var { node: a.node, view })
    }

    /// Reinterprets the elements (row-major) with a new shape of the same size.
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let n: usize = a.shape().iter().product();
        if n != shape.iter().product::<usize>() || shape.len() > 6 {
            return Err(Error::shape(&self.layer, format!("reshape {:?} to {shape:?}", a.shape())));
        }
        let a = self.contiguous_if_needed(a);
        Ok(Var { node: a.node, view: tracker(shape) })
    }

    // ---- composites ----------------------------------------------------------------------

    /// `a * s` for a scalar `s`.
    pub fn scale(&mut self, a: Var, s: f32) -> Result<Var> {
        let c = self.constant(s, &a.shape());
        self.mul(a, c)
    }

    /// `a + s` for a scalar `s`.
    pub fn add_scalar(&mut self, a: Var, s: f32) -> Result<Var> {
        let c = self.constant(s, &a.shape());
        self.add(a, c)
    }

    /// `a - b`.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        let nb = self.scale(b, -1.0)?;
        self.add(a, nb)
    }

    /// `a / b`.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        let rb = self.recip(b);
        self.mul(a, rb)
    }

    /// e^x.
    pub fn exp(&mut self, a: Var) -> Result<Var> {
        let s = self.scale(a, std::f32::consts::LOG2_E)?;
        Ok(self.exp2(s))
    }

    /// Natural logarithm.
    pub fn ln(&mut self, a: Var) -> Result<Var> {
        let l = self.log2(a);
        self.scale(l, std::f32::consts::LN_2)
    }

    /// max(x, 0), as `x * (0 < x)`.
    pub fn relu(&mut self, a: Var) -> Result<Var> {
        let zero = self.constant(0.0, &a.shape());
        let positive = self.less_than(zero, a)?;
        self.mul(a, positive)
    }

    /// `min(x, hi)`, as `hi - relu(hi - x)`.
    fn at_most(&mut self, a: Var, hi: f32) -> Result<Var> {
        let below = self.scale(a, -1.0)?;
        let below = self.add_scalar(below, hi)?;
        let below = self.relu(below)?;
        let negated = self.scale(below, -1.0)?;
        self.add_scalar(negated, hi)
    }

    /// `max(x, lo)`, as `lo + relu(x - lo)`.
    fn at_least(&mut self, a: Var, lo: f32) -> Result<Var> {
        let above = self.add_scalar(a, -lo)?;
        let above = self.relu(above)?;
        self.add_scalar(above, lo)
    }

    /// tanh(x), as `1 - 2 / (e^(2x) + 1)` with x clamped to [-15, 15], where tanh is ±1 in
    /// f32 (the clamp keeps e^(2x) finite, so no infinity meets a zero in the gradient).
    pub fn tanh(&mut self, a: Var) -> Result<Var> {
        let clamped = self.at_most(a, 15.0)?;
        let clamped = self.at_least(clamped, -15.0)?;
        let twice = self.scale(clamped, 2.0)?;
        let e = self.exp(twice)?;
        let denominator = self.add_scalar(e, 1.0)?;
        let fraction = self.recip(denominator);
        let fraction = self.scale(fraction, -2.0)?;
        self.add_scalar(fraction, 1.0)
    }

    /// GELU in the tanh approximation (PyTorch's `gelu(x, approximate="tanh")`):
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    pub fn gelu(&mut self, a: Var) -> Result<Var> {
        let square = self.mul(a, a)?;
        let cube = self.mul(square, a)?;
        let cube = self.scale(cube, 0.044715)?;
        let inner = self.add(a, cube)?;
        let inner = self.scale(inner, (2.0 / std::f32::consts::PI).sqrt())?;
        let t = self.tanh(inner)?;
        let t = self.add_scalar(t, 1.0)?;
        let half = self.scale(a, 0.5)?;
        self.mul(half, t)
    }

    /// |x|, as `x * (2 * (0 < x) - 1)` (0 at 0).
    pub fn abs(&mut self, a: Var) -> Result<Var> {
        let zero = self.constant(0.0, &a.shape());
        let pos = self.less_than(zero, a)?;
        let neg = self.less_than(a, zero)?;
        let sign = self.sub(pos, neg)?;
        self.mul(a, sign)
    }

    /// Matrix product over the last two axes; leading (batch) axes must match.
    /// Lowered as luminal does: broadcast both to `[.., M, N, K]`, multiply, sum over K.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (a.shape(), b.shape());
        let r = sa.len();
        if r < 2 || sb.len() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] || r >= 6
        {
            return Err(Error::shape(
                &self.layer,
                format!("matmul of {sa:?} and {sb:?}: expected [.., M, K] x [.., K, N]"),
            ));
        }
        let (m, n) = (sa[r - 2], sb[r - 1]);
        let a3 = self.expand(a, r - 1, n)?; // [.., M, N, K]
        let bt = self.transpose(b)?; // [.., N, K]
        let b3 = self.expand(bt, r - 2, m)?; // [.., M, N, K]
        let prod = self.mul(a3, b3)?;
        self.sum_reduce(prod, r)
    }

    /// Sum over `axis`, keeping it as a broadcast axis of the input's size.
    fn reduce_keep(&mut self, a: Var, axis: usize, max: bool) -> Result<Var> {
        let n = a.shape()[axis];
        let r = if max { self.max_reduce(a, axis)? } else { self.sum_reduce(a, axis)? };
        self.expand(r, axis, n)
    }

    /// Log-softmax over the last axis, max-subtracted (stable for logits of any magnitude).
    /// The log of the row sums is taken once per row, before broadcasting.
    pub fn log_softmax(&mut self, a: Var) -> Result<Var> {
        let last = a.rank() - 1;
        let n = a.shape()[last];
        let m = self.reduce_keep(a, last, true)?;
        let shifted = self.sub(a, m)?;
        let e = self.exp(shifted)?;
        let s = self.sum_reduce(e, last)?;
        let lse = self.ln(s)?;
        let lse = self.expand(lse, last, n)?;
        self.sub(shifted, lse)
    }

    /// Softmax over the last axis (one reciprocal per row).
    pub fn softmax(&mut self, a: Var) -> Result<Var> {
        let last = a.rank() - 1;
        let n = a.shape()[last];
        let m = self.reduce_keep(a, last, true)?;
        let shifted = self.sub(a, m)?;
        let e = self.exp(shifted)?;
        let s = self.sum_reduce(e, last)?;
        let r = self.recip(s);
        let r = self.expand(r, last, n)?;
        self.mul(e, r)
    }

    /// Mean over all elements, as a scalar (shape `[]`).
    pub fn mean_all(&mut self, a: Var) -> Result<Var> {
        let n: usize = a.shape().iter().product();
        let s = self.sum_all(a)?;
        self.scale(s, 1.0 / n as f32)
    }

    /// Sum over all elements, as a scalar (shape `[]`).
    pub fn sum_all(&mut self, a: Var) -> Result<Var> {
        let mut v = a;
        while v.rank() > 0 {
            let last = v.rank() - 1;
            v = self.sum_reduce(v, last)?;
        }
        Ok(v)
    }

    /// Mean cross-entropy of `logits` `[B, C]` against one-hot `targets` `[B, C]`.
    pub fn cross_entropy(&mut self, logits: Var, targets: Var) -> Result<Var> {
        let lp = self.log_softmax(logits)?;
        let picked = self.mul(lp, targets)?;
        let batch = logits.shape()[0];
        let total = self.sum_all(picked)?;
        self.scale(total, -1.0 / batch as f32)
    }

    /// Mean squared error over all elements.
    pub fn mse(&mut self, outputs: Var, targets: Var) -> Result<Var> {
        let d = self.sub(outputs, targets)?;
        let sq = self.mul(d, d)?;
        self.mean_all(sq)
    }
}
