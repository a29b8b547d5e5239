//! Inputs a file may leave out because they follow from the others: a prune stage's `data` is
//! the dataset of the network it prunes (the `data` of the model or training its `from` leads
//! to, through rewinds and earlier masks). A pruner that scores with data (SNIP, GraSP) then
//! uses the data its model trained on unless the file connects another dataset; one that does
//! not (magnitude, random) needs nothing written. The IR is the same as the file written out.

use crate::ast::{Experiment, InputAst, Spanned, StageAst};

/// `ast` with the inputs it implies filled in.
pub fn with_implied_inputs(ast: &Experiment) -> Experiment {
    let mut out = ast.clone();
    for stage in out.stages.iter_mut() {
        if stage.kind_name() != "prune"
            || stage.inputs.iter().any(|i| i.port.node == "data")
            || ast.gaps.inputs.contains(&stage.name.node)
        {
            continue;
        }
        if let Some(data) = dataset_of(ast, input(stage, "from"), ast.stages.len()) {
            let span = stage.name.span;
            stage.inputs.push(InputAst {
                port: Spanned::new("data".to_string(), span),
                refs: vec![Spanned::new(data, span)],
                list: false,
                span,
                inherited: None,
            });
        }
    }
    out
}

/// The single stage connected to `port` of `stage`, if there is exactly one.
fn input<'a>(stage: &'a StageAst, port: &str) -> Option<&'a str> {
    match stage.inputs.iter().find(|i| i.port.node == port)?.refs.as_slice() {
        [one] => Some(one.node.as_str()),
        _ => None,
    }
}

/// The dataset the network of stage `name` was built for; `hops` bounds the walk (a cycle is
/// reported by the checker, not followed here).
fn dataset_of(ast: &Experiment, name: Option<&str>, hops: usize) -> Option<String> {
    let stage = ast.stage(name?)?;
    match stage.kind_name() {
        "model" | "train" => input(stage, "data").map(str::to_string),
        "rewind" | "prune" if hops > 0 => dataset_of(ast, input(stage, "from"), hops - 1),
        _ => None,
    }
}
