//! Generated catalogs: flows that are valid or nearly so, of random size and shape, calling
//! each other as subflows (so that drawings expand), for the mutator to start from.

use std::fmt::Write as _;

use fastrand::Rng;

use crate::mutate::heavy;
use crate::worker::Case;

/// A catalog of one to ten flows; flow `i` may call flows after it (never before: no loops,
/// unless a mutation adds one).
pub fn catalog(rng: &mut Rng) -> Case {
    let flows = rng.usize(1..=10);
    (0..flows).map(|i| (format!("gen/f{i}.yaml"), flow(rng, i, flows))).collect()
}

fn flow(rng: &mut Rng, me: usize, flows: usize) -> String {
    let nodes = if rng.u8(0..8) == 0 { heavy(rng).min(3_000) } else { rng.usize(1..12) };
    let mut out =
        format!("id: gen.f{me}\ninputs:\n  a: {{ type: string, default: x }}\n  n: {{ type: number, default: 1 }}\n");
    out.push_str(
        "integrations:\n  duo_admin: { kind: duo_admin }\nvars:\n  v: { default: \"{{inputs.a}}\" }\nnodes:\n",
    );
    // The nodes whose result later nodes may read, with the field they offer.
    let mut readable: Vec<(usize, &str)> = Vec::new();
    for i in 0..nodes {
        let read = match readable.len() {
            0 => "inputs.a".to_owned(),
            n => {
                let (node, field) = readable[rng.usize(..n)];
                format!("nodes.n{node}.{field}")
            }
        };
        let (field, _) = match rng.u8(0..6) {
            0 if me + 1 < flows => (
                "o",
                writeln!(
                    out,
                    "  - {{ id: n{i}, kind: subflow, flow: gen.f{}, with: {{ a: \"{{{{{read}}}}}\" }} }}",
                    rng.usize(me + 1..flows)
                ),
            ),
            1 => (
                "v",
                writeln!(
                    out,
                    "  - id: n{i}\n    kind: rest_call\n    integration: duo_admin\n    method: GET\n    path: /admin/v1/users\n    extract:\n      v: {{ path: \"$.response[?@.name == 'x'].id\", many: true }}"
                ),
            ),
            2 => (
                "v",
                writeln!(out, "  - {{ id: n{i}, kind: set, when: \"{{{{not (eq {read} 1)}}}}\", values: {{ v: 1 }} }}"),
            ),
            3 if i + 1 < nodes => (
                "",
                writeln!(
                    out,
                    "  - id: n{i}\n    kind: switch\n    cases:\n      - {{ name: c, when: \"{{{{{read}}}}}\", then: [n{}] }}\n    default: []",
                    i + 1
                ),
            ),
            _ => (
                "v",
                writeln!(
                    out,
                    "  - {{ id: n{i}, kind: set, values: {{ v: \"{{{{{read}}}}} {{{{#if vars.v}}}}y{{{{/if}}}}\" }} }}"
                ),
            ),
        };
        if !field.is_empty() {
            readable.push((i, field));
        }
    }
    let out_read = readable.last().map_or("inputs.a".to_owned(), |(n, f)| format!("nodes.n{n}.{f}"));
    let _ = write!(out, "outputs:\n  o: {{ value: \"{{{{{out_read}}}}}\", default: 0 }}\n");
    out
}
