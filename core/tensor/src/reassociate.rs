//! Matrix-chain reassociation: where two or more matrix products follow each other with
//! nothing between them, multiply them in the cheapest order for the graph's known shapes.
//!
//! A product's operand joins its chain when it is itself a product that nobody else reads:
//! `(X · A) · B` with `X · A` used only there is the chain `X, A, B`. A ReLU (or any op) between
//! two products ends the chain, and so does an intermediate that is read elsewhere, kept or
//! retrieved. The textbook dynamic program over the chain's dimensions finds the order with the
//! fewest multiply-adds; the chain is rebuilt only when that order is strictly cheaper than the
//! graph's own, so otherwise the graph is left exactly as it was. Matrix products are
//! associative in exact arithmetic, so the rewritten graph computes the same function; only
//! rounding differs.
//!
//! Run on a forward graph before autograd, the gradients come out of the same algebra: the
//! paper's MLP multiplies `W_in · W_E` once (48 x 67) instead of pushing every example through
//! the 500-wide embedding, and the gradients of `W_E` and `W_in` are products with that small
//! matrix's gradient. Run again on the whole graph, it also reorders chains that only the
//! gradient graph has.

use std::collections::HashMap;

use luminal::compiler_utils::move_outgoing_edge;
use luminal::graph::NodeIndex;

use super::contraction::{Operand, Product, consumers, product};
use ticketlab_api::Result;
use ticketlab_api::tensor::graph::{GraphBuilder, Var, tracker};

/// Reorders every chain of products in `g` that a cheaper order exists for; `held` are node
/// ids the caller keeps (outputs), updated where a chain's result moves to a new node.
/// Returns the number of chains rewritten.
pub(crate) fn reassociate(g: &mut GraphBuilder, held: &mut [NodeIndex]) -> Result<usize> {
    let products: HashMap<NodeIndex, Product> =
        g.cx.graph.node_indices().filter_map(|n| product(&g.cx, n).map(|p| (n, p))).collect();
    let inner: HashMap<NodeIndex, NodeIndex> = products
        .values()
        .flat_map(|p| [p.lhs, p.rhs].map(|o| (o, p.mul)))
        .filter(|(o, _)| joins_chain(g, &products, held, o))
        .map(|(o, consumer)| (o.node, consumer))
        .collect();
    let mut tops: Vec<Product> =
        products.values().filter(|p| !inner.contains_key(&p.sum)).copied().collect();
    tops.sort_by_key(|p| p.sum);
    let mut rewritten = 0;
    for top in tops {
        let mut chain = Chain::default();
        chain.flatten(&products, &inner, top.lhs);
        chain.flatten(&products, &inner, top.rhs);
        chain.cost += top.cost();
        if chain.factors.len() < 3 || !chain.factors.iter().all(|f| representable(g, f)) {
            continue;
        }
        let order = Order::cheapest(&chain.factors);
        if order.cost(0, chain.factors.len() - 1) >= chain.cost {
            continue;
        }
        g.set_layer("reassociated matrix chain");
        let result = order.build(g, &chain.factors, 0, chain.factors.len() - 1)?;
        let result = g.contiguous_if_needed(result);
        replace(g, top.sum, result.node, held);
        for node in [top.sum, top.mul].into_iter().chain(chain.removed) {
            g.remove_node(node);
        }
        rewritten += 1;
        #[cfg(test)]
        super::pass_tests::REWRITES.with(|r| r.set(r.get() + 1));
    }
    Ok(rewritten)
}

/// Whether operand `o` of a product is a product whose result only that operand reads, seen
/// as its whole buffer (possibly transposed), so that it can be multiplied in another order.
fn joins_chain(
    g: &GraphBuilder,
    products: &HashMap<NodeIndex, Product>,
    held: &[NodeIndex],
    o: &Operand,
) -> bool {
    let Some(p) = products.get(&o.node) else { return false };
    let (rows, cols) = (p.lhs.rows, p.rhs.cols);
    let whole = (o.is_row_major() && (o.rows, o.cols) == (rows, cols))
        || (o.transposed().is_row_major() && (o.rows, o.cols) == (cols, rows));
    whole
        && consumers(&g.cx, o.node) == 1
        && !held.contains(&o.node)
        && !g.cx.no_delete.contains(&o.node)
        && !g.cx.to_retrieve.contains(&o.node)
}

/// A chain's matrices in order, what computing it in the graph's order costs, and the nodes
/// of the products inside it.
#[derive(Default)]
struct Chain {
    factors: Vec<Operand>,
    cost: usize,
    removed: Vec<NodeIndex>,
}

impl Chain {
    fn flatten(
        &mut self,
        products: &HashMap<NodeIndex, Product>,
        inner: &HashMap<NodeIndex, NodeIndex>,
        o: Operand,
    ) {
        let Some(p) = products.get(&o.node).filter(|_| inner.contains_key(&o.node)) else {
            self.factors.push(o);
            return;
        };
        self.cost += p.cost();
        self.removed.extend([p.sum, p.mul]);
        if o.is_row_major() && o.rows == p.lhs.rows {
            self.flatten(products, inner, p.lhs);
            self.flatten(products, inner, p.rhs);
        } else {
            // (L · R)^T = R^T · L^T
            self.flatten(products, inner, p.rhs.transposed());
            self.flatten(products, inner, p.lhs.transposed());
        }
    }
}

/// Whether a factor can be read as a graph variable: its node's whole buffer, row-major or
/// transposed.
fn representable(g: &GraphBuilder, f: &Operand) -> bool {
    let len: usize = g.node_shape(f.node).iter().product();
    len == f.rows * f.cols && (f.is_row_major() || f.transposed().is_row_major())
}

fn factor_var(g: &mut GraphBuilder, f: &Operand) -> Result<Var> {
    if f.is_row_major() {
        Ok(Var { node: f.node, view: tracker(&[f.rows, f.cols]) })
    } else {
        g.transpose(Var { node: f.node, view: tracker(&[f.cols, f.rows]) })
    }
}

/// The cheapest parenthesisation of a chain (the classic dynamic program over its dimensions).
pub(crate) struct Order {
    /// `cost[i][j]`: multiply-adds of the best product of factors `i..=j`.
    cost: Vec<Vec<usize>>,
    /// `split[i][j]`: the best product of `i..=j` is `(i..=s) · (s+1..=j)`.
    split: Vec<Vec<usize>>,
}

impl Order {
    /// The cheapest order for matrices with these `(rows, cols)`.
    pub(crate) fn cheapest(factors: &[Operand]) -> Self {
        let dims: Vec<usize> =
            factors.iter().map(|f| f.rows).chain(factors.last().map(|f| f.cols)).collect();
        Self::for_dims(&dims)
    }

    /// The cheapest order for matrices `dims[i] x dims[i + 1]`.
    pub(crate) fn for_dims(dims: &[usize]) -> Self {
        let n = dims.len() - 1;
        let mut cost = vec![vec![0usize; n]; n];
        let mut split = vec![vec![0usize; n]; n];
        for len in 2..=n {
            for i in 0..=n - len {
                let j = i + len - 1;
                let (best, at) = (i..j)
                    .map(|s| {
                        (
                            cost[i][s]
                                .saturating_add(cost[s + 1][j])
                                .saturating_add(dims[i] * dims[s + 1] * dims[j + 1]),
                            s,
                        )
                    })
                    .min()
                    .expect("a chain of two or more has a split");
                cost[i][j] = best;
                split[i][j] = at;
            }
        }
        Self { cost, split }
    }

    /// Multiply-adds of the best product of factors `i..=j`.
    pub(crate) fn cost(&self, i: usize, j: usize) -> usize {
        self.cost[i][j]
    }

    /// The best order written out, e.g. `((0 1) 2)`.
    #[cfg(test)]
    pub(crate) fn describe(&self, i: usize, j: usize) -> String {
        if i == j {
            return i.to_string();
        }
        let s = self.split[i][j];
        format!("({} {})", self.describe(i, s), self.describe(s + 1, j))
    }

    fn build(&self, g: &mut GraphBuilder, factors: &[Operand], i: usize, j: usize) -> Result<Var> {
        if i == j {
            return factor_var(g, &factors[i]);
        }
        let s = self.split[i][j];
        let left = self.build(g, factors, i, s)?;
        let right = self.build(g, factors, s + 1, j)?;
        g.matmul(left, right)
    }
}

/// Moves `old`'s consumers and every reference to it over to `new`.
fn replace(g: &mut GraphBuilder, old: NodeIndex, new: NodeIndex, held: &mut [NodeIndex]) {
    move_outgoing_edge(old, new, &mut g.cx.graph);
    held.iter_mut().filter(|h| **h == old).for_each(|h| *h = new);
    for set in [&mut g.cx.no_delete, &mut g.cx.to_retrieve] {
        if set.remove(&old) {
            set.insert(new);
        }
    }
}
