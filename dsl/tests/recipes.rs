//! The recipe once: `--set '*.PARAM=VALUE'` on every stage that has the parameter, and YAML
//! anchors sharing one `with` between stages.

use crate::common::{load, load_ok, load_text, read};

#[test]
fn a_wildcard_set_reaches_every_stage_with_the_parameter() {
    let each =
        load_ok("experiments/quickstart.yaml", &["dense.steps=100", "ticket_train.steps=100"]);
    assert_eq!(load_ok("experiments/quickstart.yaml", &["*.steps=100"]), each);
    // A parameter of the prune kind only reaches the prune stage.
    let ir = load_ok("experiments/quickstart.yaml", &["*.rate=0.7"]);
    let rates: Vec<_> = ir.stages.iter().filter_map(|s| s.params.get("rate")).collect();
    assert_eq!(rates, [&serde_json::json!(0.7)]);
    let err = load("experiments/quickstart.yaml", &["*.stpes=100"]).unwrap_err().render();
    assert!(
        err.contains("no stage has a parameter `stpes`") && err.contains("did you mean `steps`"),
        "{err}"
    );
}

#[test]
fn a_yaml_anchor_shares_a_recipe_and_gives_the_ir_of_the_file_written_out() {
    let file = String::from_utf8(read("experiments/quickstart.yaml")).unwrap();
    let recipe = "with: { steps: 4000, lr: 0.003, weight_decay: 1.0, eval_every: 25 }";
    assert_eq!(file.matches(recipe).count(), 2, "the quickstart writes its recipe twice");
    let anchored = file.replacen(recipe, &format!("with: &recipe {}", &recipe[6..]), 1).replacen(
        recipe,
        "with: *recipe",
        1,
    );
    assert!(anchored.contains("*recipe"));
    let ir = load_text("quickstart.yaml", &anchored).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(ir, load_ok("experiments/quickstart.yaml", &[]));
}
