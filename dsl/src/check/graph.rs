//! Checking the stage graph: each stage's input ports and the stages they connect to, and
//! cycles between stages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ticketlab_api::ir::{ArtifactType, Port, StageKind};
use ticketlab_api::plugin::registry::{closest, suggestion};

use super::Checker;
use crate::ast::{Experiment, InputAst, Span, StageAst};
use crate::diag::Diag;

fn type_label(t: ArtifactType) -> &'static str {
    match t {
        ArtifactType::Dataset => "a dataset",
        ArtifactType::Model => "a model",
        ArtifactType::Mask => "a mask",
        ArtifactType::Run => "a training run",
        ArtifactType::Analysis => "an analysis",
    }
}

fn accepts_label(port: &Port) -> String {
    port.accepts.iter().map(|t| type_label(*t)).collect::<Vec<_>>().join(" or ")
}

impl Checker<'_> {
    pub(super) fn inputs(
        &mut self,
        s: &StageAst,
        kind: StageKind,
        names: &[&str],
        scores_with_data: Option<&str>,
    ) -> BTreeMap<String, Vec<String>> {
        let name = s.name.node.as_str();
        let ports = kind.ports();
        let port_names: Vec<&str> = ports.iter().map(|p| p.name).collect();
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        // Ports that a misspelt port was probably meant as: not reported again as missing.
        let mut meant: HashSet<&str> = HashSet::new();
        for input in &s.inputs {
            let pname = input.port.node.as_str();
            if input.inherited.is_some() {
                // The stage extended has the same ports and reports problems with the
                // connection; it counts as connected here.
                seen.insert(pname, input.port.span);
                if ports.iter().any(|p| p.name == pname) {
                    out.insert(
                        pname.to_string(),
                        input.refs.iter().map(|r| r.node.clone()).collect(),
                    );
                }
                continue;
            }
            if let Some(prev) = seen.get(pname) {
                self.error(
                    Diag::new(format!("input `{name}.{pname}` is connected twice"))
                        .label(input.port.span, "connected again here")
                        .label(*prev, "first connected here")
                        .help(format!(
                            "connect `{pname}` once (a list if the port takes several stages)"
                        )),
                );
                continue;
            }
            seen.insert(pname, input.port.span);
            let Some(port) = ports.iter().find(|p| p.name == pname) else {
                meant.extend(closest(pname, &port_names));
                let help = if ports.is_empty() {
                    format!("{} stages take no inputs; remove `{pname}`", kind.as_str())
                } else {
                    suggestion(pname, &port_names, &format!("ports of {} stages", kind.as_str()))
                };
                self.error(
                    Diag::new(format!(
                        "unknown input port `{pname}` in stage `{name}` ({})",
                        kind.as_str()
                    ))
                    .label(input.port.span, "unknown port")
                    .help(help),
                );
                continue;
            };
            self.connection(s, port, input, names);
            out.insert(pname.to_string(), input.refs.iter().map(|r| r.node.clone()).collect());
        }
        if self.gaps.inputs.contains(name) {
            // An input was left out: what is missing may be just that.
            return out;
        }
        if matches!(kind, StageKind::Analyze | StageKind::Report)
            && meant.is_empty()
            && out.values().all(Vec::is_empty)
        {
            let list: Vec<String> =
                ports.iter().map(|p| format!("`{}` ({})", p.name, accepts_label(p))).collect();
            self.error(
                Diag::new(format!("{} stage `{name}` has no inputs", kind.as_str()))
                    .label(s.name.span, "no inputs connected")
                    .help(format!(
                        "connect at least one of the ports of {} stages: {}; e.g. `inputs: {{ runs: [STAGE, ...] }}`",
                        kind.as_str(),
                        list.join(", ")
                    )),
            );
        }
        // `data` of a prune stage whose pruner scores with data (`PrunerPlugin::needs_data`).
        let required = |p: &Port| p.required || (p.name == "data" && scores_with_data.is_some());
        for port in ports
            .iter()
            .filter(|p| required(p) && !seen.contains_key(p.name) && !meant.contains(p.name))
        {
            let why = match scores_with_data {
                Some(pruner) if !port.required => format!(": pruner `{pruner}` scores with data"),
                _ => String::new(),
            };
            self.error(
                Diag::new(format!(
                    "stage `{name}` ({}) needs input `{}`{why}",
                    kind.as_str(),
                    port.name
                ))
                .label(s.name.span, format!("`{}` not connected", port.name))
                .help(format!(
                    "add `inputs: {{ {}: STAGE }}` with a stage producing {}",
                    port.name,
                    accepts_label(port)
                )),
            );
        }
        out
    }

    fn connection(&mut self, s: &StageAst, port: &Port, input: &InputAst, names: &[&str]) {
        let name = s.name.node.as_str();
        if !port.many && (input.list || input.refs.len() != 1) {
            self.error(
                Diag::new(format!("input `{name}.{}` takes one stage, not a list", port.name))
                    .label(input.span, "a list here")
                    .help(format!("connect a single stage: `{}: STAGE`", port.name)),
            );
        }
        if input.refs.is_empty() && port.required {
            self.error(
                Diag::new(format!("input `{name}.{}` is connected to no stage", port.name))
                    .label(input.span, "empty")
                    .help(format!("connect a stage producing {}", accepts_label(port))),
            );
        }
        let mut listed: HashMap<&str, Span> = HashMap::new();
        for r in &input.refs {
            let target = r.node.as_str();
            if let Some(prev) = listed.get(target) {
                self.error(
                    Diag::new(format!(
                        "stage `{target}` is listed twice in `{name}.{}`",
                        port.name
                    ))
                    .label(r.span, "listed again here")
                    .label(*prev, "first listed here")
                    .help("list each stage once"),
                );
                continue;
            }
            listed.insert(target, r.span);
            if self.unread(target) {
                continue;
            }
            if !names.contains(&target) {
                self.error(
                    Diag::new(format!(
                        "`{name}.{}` refers to `{target}`, which is not a stage",
                        port.name
                    ))
                    .label(r.span, "no such stage")
                    .help(suggestion(target, names, "stages")),
                );
                continue;
            }
            if let Some(k) = self.kinds.get(target)
                && !port.accepts.contains(&k.output())
            {
                self.error(
                    Diag::new(format!(
                        "input `{name}.{}` takes {}, but `{target}` ({}) produces {}",
                        port.name,
                        accepts_label(port),
                        k.as_str(),
                        type_label(k.output())
                    ))
                    .label(r.span, format!("produces {}", type_label(k.output())))
                    .help(format!(
                        "connect `{}` to a stage producing {}",
                        port.name,
                        accepts_label(port)
                    )),
                );
            }
        }
    }

    /// Reports each cycle of the stage graph once.
    pub(super) fn cycles(&mut self, ast: &Experiment) {
        let index: HashMap<&str, usize> =
            ast.stages.iter().enumerate().map(|(i, s)| (s.name.node.as_str(), i)).collect();
        // Edges: consumer -> producers, with the span of the reference.
        let edges: Vec<Vec<(usize, Span)>> = ast
            .stages
            .iter()
            .map(|s| {
                s.inputs
                    .iter()
                    .flat_map(|i| i.refs.iter())
                    .filter_map(|r| index.get(r.node.as_str()).map(|&j| (j, r.span)))
                    .collect()
            })
            .collect();
        let n = ast.stages.len();
        let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            // Iterative DFS; the stack holds (node, next edge index).
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (v, ref mut next)) = stack.last_mut() {
                if *next < edges[v].len() {
                    let (w, span) = edges[v][*next];
                    *next += 1;
                    match state[w] {
                        0 => {
                            state[w] = 1;
                            stack.push((w, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                            let cycle: Vec<usize> = stack[from..].iter().map(|&(x, _)| x).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if reported.insert(key) {
                                self.report_cycle(ast, &cycle, span);
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[v] = 2;
                    stack.pop();
                }
            }
        }
    }

    fn report_cycle(&mut self, ast: &Experiment, cycle: &[usize], closing: Span) {
        let mut path: Vec<&str> = cycle.iter().map(|&i| ast.stages[i].name.node.as_str()).collect();
        path.push(path[0]);
        let mut d =
            Diag::new(format!("stages depend on each other in a cycle: {}", path.join(" ← ")))
                .label(closing, "this reference closes the cycle");
        for &i in cycle {
            d = d.label(ast.stages[i].name.span, "");
        }
        self.error(d.help(
            "a stage can only use stages that do not depend on it; remove one of these references",
        ));
    }
}
