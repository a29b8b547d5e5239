//! ticketlab's built-in plugins, one folder or file per plugin kind: [`datasets`],
//! [`architectures`], the trainers ([`trainer`], [`edge_popup`]), [`pruners`], [`analyses`] and
//! the compare [`report`], each registered with [`ticketlab_api::register_plugin!`]. A binary
//! must link this crate for them to exist: `use ticketlab_plugins as _;` (inventory only sees
//! crates that are linked).
//!
//! Plugins depend on `ticketlab-api` (the vocabulary and traits) and `ticketlab-tensor` (training
//! graphs and the pruning math), never on the engine that plans and stores runs.

pub mod analyses;
pub mod architectures;
pub mod datasets;
pub mod edge_popup;
pub mod pruners;
pub mod report;
pub mod trainer;

/// Every built-in plugin as `(kind, name)`, sorted: what [`ticketlab_api::plugin::registry::Registry::builtin`]
/// must contain when this crate is linked.
pub const BUILTIN: &[(&str, &str)] = &[
    ("analysis", "fourier_entropy"),
    ("analysis", "graph_metrics"),
    ("analysis", "jaccard"),
    ("analysis", "lmc"),
    ("analysis", "weight_norms"),
    ("architecture", "mlp"),
    ("architecture", "mlp_modular"),
    ("architecture", "mnist_mlp"),
    ("architecture", "transformer"),
    ("architecture", "transformer_modular"),
    ("dataset", "file"),
    ("dataset", "mnist"),
    ("dataset", "modular"),
    ("dataset", "polynomial"),
    ("dataset", "sparse_parity"),
    ("pruner", "grasp"),
    ("pruner", "magnitude"),
    ("pruner", "random"),
    ("pruner", "shuffle"),
    ("pruner", "snip"),
    ("pruner", "synflow"),
    ("report", "compare"),
    ("trainer", "edge_popup"),
    ("trainer", "standard"),
];

#[cfg(test)]
mod tests {
    use ticketlab_api::plugin::registry::Registry;

    #[test]
    fn every_builtin_is_registered_once() {
        let registry = Registry::builtin().expect("no duplicate registrations");
        let mut found: Vec<(String, String)> =
            registry.entries().map(|e| (e.kind.to_string(), e.name.clone())).collect();
        found.sort();
        let expected: Vec<(String, String)> =
            super::BUILTIN.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect();
        assert_eq!(found, expected);
    }
}
