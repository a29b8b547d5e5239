//! Building luminal graphs with shapes chosen at run time.

/// Builds a luminal graph from untyped views.
pub struct GraphBuilder {
    _private: (),
}

/// A view of a graph node's output.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    _private: (),
}
