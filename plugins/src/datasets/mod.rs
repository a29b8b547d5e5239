//! Built-in dataset plugins: the paper's tasks (modular arithmetic, MNIST) and synthetic ones.

mod file;
mod mnist;
pub(crate) mod modular;
mod python_random;
mod synthetic;

pub use mnist::load_idx_pair;
pub use modular::{Operation, SplitDraw, modular_dataset};

#[cfg(test)]
mod tests {
    use ticketlab_api::plugin::registry::Registry;
    use ticketlab_api::plugin::{Params, PluginKind, StageContext};

    /// What a task says it will build, before building it (for memory estimates), is what it
    /// builds.
    #[test]
    fn shapes_known_from_parameters_match_the_built_datasets() {
        let registry = Registry::builtin().unwrap();
        let ctx = StageContext::new("data", 3, ".");
        for name in ["modular", "polynomial", "sparse_parity"] {
            let entry = registry.get(PluginKind::Dataset, name).unwrap();
            let params = Params::new().with_defaults(&entry.params);
            let plugin = registry.dataset(name).unwrap();
            let shape = plugin.shape(&params).unwrap_or_else(|| panic!("{name} gives no shape"));
            let built = plugin.build(&params, &ctx).unwrap();
            assert_eq!(shape.info, built.info, "{name}");
            assert_eq!((shape.train, shape.test), (built.train.len(), built.test.len()), "{name}");
        }
    }
}
