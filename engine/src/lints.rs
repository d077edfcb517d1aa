//! The warnings of a compiled flow: what is valid but almost certainly not what the author
//! meant (nodes that can never run, results nobody reads, outputs that may have no value).

use crate::diag::Diags;
use crate::model::Output;
use crate::plan::{EdgeKind, OnError, Plan};

/// The warnings node kinds found while compiling their nodes (`kind::Lint`).
pub(crate) fn kinds(plan: &Plan, diags: &mut Diags) {
    for node in &plan.nodes {
        for lint in &node.compiled.lints {
            let d = diags.warning(lint.code, Some(lint.span), lint.message.clone());
            d.label = lint.label.clone();
            d.help = lint.help.clone();
        }
    }
}

/// Nodes that can never run: after a node that ends the run, or behind a `when: false`.
pub(crate) fn unreachable(plan: &Plan, diags: &mut Diags) {
    for &i in &plan.order {
        let node = &plan.nodes[i];
        if let Some(end) = plan.deps(i).map(|(d, _)| d).find(|d| {
            let end = &plan.nodes[*d];
            end.compiled.ends_run && !end.may_skip && end.on_error == OnError::Stop
        }) {
            diags
                .warning("unreachable", Some(node.span), format!("node `{}` can never run", node.id))
                .label(format!("it waits for `{}`, which always ends the run", plan.nodes[end].id))
                .help("give the two nodes different `when:` conditions or branches instead of an order");
        } else if node.when.as_ref().is_some_and(|w| w.source.trim() == "false") {
            diags
                .warning("unreachable", Some(node.span), format!("node `{}` can never run", node.id))
                .label("its `when:` is always false")
                .help("remove the node, or give it a real condition");
        }
    }
}

/// Pure nodes whose results nothing reads.
pub(crate) fn unused(plan: &Plan, outputs: &[Output], diags: &mut Diags) {
    for (i, node) in plan.nodes.iter().enumerate() {
        if !node.compiled.pure {
            continue;
        }
        let read_by_node = plan.dependents(i).any(|(_, k)| k == EdgeKind::Data);
        let read_by_output = outputs
            .iter()
            .flat_map(|o| {
                o.value.refs.iter().chain(o.default.iter().flat_map(|d| d.templates()).flat_map(|t| t.refs.iter()))
            })
            .any(|r| r.path.len() > 1 && r.path[0] == "nodes" && r.path[1] == node.id);
        if !read_by_node && !read_by_output && node.compiled.branches.is_empty() {
            diags
                .warning(
                    "unused",
                    Some(node.span),
                    format!("the result of `{}` node `{}` is never read", node.kind, node.id),
                )
                .label("no node or output reads it")
                .help(format!("read it as `nodes.{}.<field>`, or remove the node", node.id));
        }
    }
}

/// Outputs that read a node which may be skipped, with nothing to fall back on.
pub(crate) fn skippable_outputs(plan: &Plan, outputs: &[Output], diags: &mut Diags) {
    for o in outputs.iter().filter(|o| o.default.is_none()) {
        let skippable = o.value.refs.iter().filter(|r| !r.soft).find_map(|r| {
            let id = r.path.get(1).filter(|_| r.path[0] == "nodes")?;
            let i = plan.index(id)?;
            plan.nodes[i].may_skip.then_some((r, id))
        });
        if let Some((r, id)) = skippable {
            diags
                .warning(
                    "skippable-output",
                    Some(r.span),
                    format!("output `{}` reads `{id}`, which may be skipped", o.name),
                )
                .label("skipped when its `when:` is false or its branch is not taken")
                .help("give the output a `default:` for runs in which the node is skipped");
        }
    }
}
