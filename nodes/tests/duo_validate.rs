//! `flowcat validate`'s Duo checks (`nodes/src/duo/validate.rs`) with the real node kinds: each
//! diagnostic where it points, what it expects and its hint; what a template hides is never an
//! error; the permissions a flow needs, its subflows' included.

use std::sync::Arc;

use flowcat_engine::Catalog;
use flowcat_engine::diag::Source;
use flowcat_nodes::REGISTRY;

fn catalog(files: &[(&str, &str)]) -> Catalog {
    let sources = files.iter().map(|(p, t)| Arc::new(Source { path: (*p).into(), text: (*t).into() })).collect();
    Catalog::load(sources, &REGISTRY)
}

/// `code file:line:col: message | label | help` for each diagnostic.
fn report(c: &Catalog) -> Vec<String> {
    c.diagnostics()
        .map(|d| {
            format!(
                "{} {}: {} | {} | {}",
                d.code,
                d.location(),
                d.message,
                d.label.as_deref().unwrap_or("-"),
                d.help.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// A flow with one Duo call: `call` is the node's fields after `kind: rest_call`, indented by
/// four spaces; the node's id is `call`.
fn one_call(call: &str) -> String {
    format!(
        "id: t.duo
integrations:
  duo_admin: {{ kind: duo_admin }}
  duo_auth: {{ kind: duo_auth }}
inputs:
  user_id: {{ type: string }}
nodes:
  - id: call
    kind: rest_call
{call}
outputs:
  status: \"{{{{nodes.call.status}}}}\"
"
    )
}

fn check(call: &str) -> Vec<String> {
    report(&catalog(&[("t.yaml", &one_call(call))]))
}

#[test]
fn a_call_as_duo_documents_it_has_nothing_to_say() {
    let calls = [
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/users\n    query: { username: \"{{inputs.user_id}}\", limit: 10 }\n    extract:\n      id: $.response[0].user_id\n      phones: { path: \"$.response[*].phones[*].phone_id\", many: true }\n      next: { path: $.metadata.next_offset, optional: true }",
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/users/{{inputs.user_id}}/phones\n    extract: { numbers: \"$.response[*].number\" }",
        "    integration: duo_auth\n    method: GET\n    path: /auth/v2/auth_status\n    query: { txid: \"{{inputs.user_id}}\" }\n    extract: { result: $.response.result }",
        "    integration: duo_admin\n    method: DELETE\n    path: /admin/v1/users/{{inputs.user_id}}/phones/DPXXXXXXXXXXXXXXXXXX",
        // A child account's call through an Accounts API application names it on any call.
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/phones\n    query: { account_id: DA0123456789ABCDEF01, number: \"+15555550100\" }",
        // Not described beyond path and method: nothing is checked about the parameters.
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/settings\n    query: { anything: 1 }",
        // JSONPaths the check does not follow are left alone.
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/phones\n    extract: { ids: { path: \"$..phone_id\", many: true } }",
    ];
    for call in calls {
        assert_eq!(check(call), Vec::<String>::new(), "{call}");
    }
}

#[test]
fn an_unknown_path_is_an_error_with_the_nearest_described_path() {
    let found =
        check("    integration: duo_admin\n    method: GET\n    path: /admin/v1/usres/{{inputs.user_id}}/phones");
    assert_eq!(
        found,
        [
            "duo-unknown-path t.yaml:12:11: `/admin/v1/usres/{{inputs.user_id}}/phones` is not a path of Duo's Admin API | expected a path of Duo's Admin API (https://duo.com/docs/adminapi) | did you mean `/admin/v1/users/{user_id}/phones`?"
        ]
    );
    let far = check("    integration: duo_auth\n    method: POST\n    path: /auth/v2/something/entirely/else");
    assert_eq!(far.len(), 1, "{far:?}");
    assert!(far[0].ends_with("| see the paths of Duo's Auth API (https://duo.com/docs/authapi)"), "{far:?}");
    // A path outside both APIs through a Duo slot is unknown too.
    let outside = check("    integration: duo_admin\n    method: GET\n    path: /frame/web/v1/auth");
    assert!(outside[0].starts_with("duo-unknown-path t.yaml:12:11: `/frame/web/v1/auth` is not a path"), "{outside:?}");
}

#[test]
fn a_known_path_with_another_method_names_the_methods_it_takes() {
    let found =
        check("    integration: duo_admin\n    method: PUT\n    path: /admin/v1/users\n    body: { username: x }");
    assert_eq!(
        found,
        [
            "duo-wrong-method t.yaml:11:13: Duo's Admin API has no `PUT /admin/v1/users` | the path takes `GET` or `POST` | use `method: GET`, or check the path `/admin/v1/users` against Duo's documentation"
        ]
    );
}

#[test]
fn an_unknown_or_misspelt_parameter_is_an_error_with_did_you_mean() {
    let found = check(
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/users\n    query: { usrname: \"{{inputs.user_id}}\" }",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("duo-unknown-param t.yaml:13:14: `GET /admin/v1/users` has no parameter `usrname` | expected `username`, `email`,"),
        "{found:?}"
    );
    assert!(found[0].ends_with("| did you mean `username`?"), "{found:?}");
    // A body parameter of a POST too, and one for a call that takes none.
    let enroll = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/enroll\n    body: { username: a, email: a@example.com, valid_days: 3 }",
    );
    assert!(
        enroll[0].contains("has no parameter `valid_days`") && enroll[0].ends_with("did you mean `valid_secs`?"),
        "{enroll:?}"
    );
    let none = check("    integration: duo_auth\n    method: GET\n    path: /auth/v2/check\n    query: { verbose: 1 }");
    assert!(
        none[0]
            .contains("has no parameter `verbose` | it takes no parameters | see https://duo.com/docs/authapi#/check"),
        "{none:?}"
    );
}

#[test]
fn a_missing_required_parameter_is_an_error_at_where_parameters_go() {
    let found = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/enroll\n    body: { username: \"{{inputs.user_id}}\" }",
    );
    assert_eq!(
        found,
        [
            "duo-missing-param t.yaml:13:5: `POST /admin/v1/users/enroll` needs the parameter `email` | Duo answers 40001 (missing required parameters) without it | add `email:` (a string) under `body:`"
        ]
    );
    // No `body:` at all: at the path. A literal null leaves the parameter out.
    let bare =
        check("    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/{{inputs.user_id}}/phones");
    assert!(
        bare[0].starts_with(
            "duo-missing-param t.yaml:12:11: `POST /admin/v1/users/{user_id}/phones` needs the parameter `phone_id`"
        ),
        "{bare:?}"
    );
    let null =
        check("    integration: duo_auth\n    method: GET\n    path: /auth/v2/auth_status\n    query: { txid: null }");
    assert!(
        null[0].starts_with("duo-missing-param t.yaml:13:5: `GET /auth/v2/auth_status` needs the parameter `txid`"),
        "{null:?}"
    );
    // One of a pair: reported once, naming both.
    let pair = check(
        "    integration: duo_auth\n    method: POST\n    path: /auth/v2/preauth\n    body: { ipaddr: 10.0.0.1 }",
    );
    assert_eq!(pair.len(), 1, "{pair:?}");
    assert!(pair[0].contains("`POST /auth/v2/preauth` needs `username` or `user_id` | Duo refuses the call without one of them | add `username:` under `body:`"), "{pair:?}");
}

#[test]
fn a_path_parameter_given_as_a_parameter_is_in_the_wrong_place() {
    let found = check(
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/users/{{inputs.user_id}}\n    query: { user_id: \"{{inputs.user_id}}\" }",
    );
    assert_eq!(
        found,
        [
            "duo-param-in-path t.yaml:13:14: `user_id` is part of the path of `GET /admin/v1/users/{user_id}` | Duo reads `user_id` from the path only | remove it here and write its value in the path: `/admin/v1/users/{user_id}`"
        ]
    );
    // Query parameters on a POST keep their own error, and are not reported twice.
    let post =
        check("    integration: duo_admin\n    method: POST\n    path: /admin/v1/users\n    query: { username: x }");
    let codes: Vec<&str> = post.iter().map(|d| d.split(' ').next().unwrap_or_default()).collect();
    assert_eq!(codes, ["query-not-allowed"], "{post:?}");
}

#[test]
fn a_value_written_out_that_duo_refuses_is_an_error() {
    let status = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/{{inputs.user_id}}\n    body: { status: locked }\n    reconcile: { none: a test }",
    );
    assert_eq!(
        status,
        [
            "duo-bad-value t.yaml:13:21: `status` of `POST /admin/v1/users/{user_id}` takes one of `active`, `bypass`, `disabled`, not `locked` | Duo refuses it: 40002 (invalid request parameters), or flowcat before sending | write `active`, `bypass` or `disabled`"
        ]
    );
    let limit =
        check("    integration: duo_admin\n    method: GET\n    path: /admin/v1/phones\n    query: { limit: ten }");
    assert!(
        limit[0].starts_with(
            "duo-bad-value t.yaml:13:21: `limit` of `GET /admin/v1/phones` takes a non-negative integer, not `ten`"
        ),
        "{limit:?}"
    );
    // A YAML boolean in a Duo body is refused before sending: the hint says what to write.
    let flag = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/phones/{{inputs.user_id}}/send_sms_activation\n    body: { install: true }\n    reconcile: { none: a test }",
    );
    assert!(
        flag[0].contains("takes `1` or `0`, not the boolean `true`") && flag[0].ends_with("write `install: \"1\"`"),
        "{flag:?}"
    );
    let list = check(
        "    integration: duo_admin\n    method: GET\n    path: /admin/v1/users\n    query: { user_id_list: [DU1, DU2] }",
    );
    assert!(list[0].contains("takes a JSON array of strings, not a list written in YAML"), "{list:?}");
    let platform = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/phones\n    body: { platform: apple ois }\n    reconcile: { none: a test }",
    );
    assert!(platform[0].ends_with("| did you mean `apple ios`?"), "{platform:?}");
    // Case does not matter to Duo's words; templates and numbers where numbers go are fine.
    let fine = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/phones\n    body: { type: Mobile, platform: \"{{inputs.user_id}}\", predelay: 2 }\n    reconcile: { none: a test }",
    );
    assert_eq!(fine, Vec::<String>::new());
}

#[test]
fn templated_values_and_segments_are_never_false_errors() {
    // A template may render null, and then the parameter is left out: only the run can tell.
    let given = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/enroll\n    body: { username: \"{{inputs.user_id}}\", email: \"{{inputs.user_id}}\" }\n    reconcile: { none: a test }",
    );
    assert_eq!(given, Vec::<String>::new());
    // A templated first segment hides which API it is.
    let hidden = check(
        "    integration: duo_admin\n    method: GET\n    path: /{{inputs.user_id}}/v1/users\n    query: { nonsense: 1 }",
    );
    assert_eq!(hidden, Vec::<String>::new());
    // `users/{{…}}` is Modify User (a parameter), not Enroll User (a word): no `email` needed.
    let modify = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/users/{{inputs.user_id}}\n    body: { status: disabled }\n    reconcile: { none: a test }",
    );
    assert_eq!(modify, Vec::<String>::new());
}

#[test]
fn an_extraction_of_a_field_duo_does_not_return_is_a_warning() {
    let c = catalog(&[(
        "t.yaml",
        &one_call(
            "    integration: duo_admin\n    method: GET\n    path: /admin/v1/phones/{{inputs.user_id}}\n    extract:\n      number: $.response.numbr\n      first: $.response.users.user_id",
        ),
    )]);
    let found = report(&c);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("duo-unknown-field t.yaml:14:15: the answer of `GET /admin/v1/phones/{phone_id}` has no field `numbr` at `$.response` | Duo documents `phone_id`, `number`,"),
        "{found:?}"
    );
    assert!(
        found[0].ends_with("| did you mean `number`? (see https://duo.com/docs/adminapi#retrieve-phone-by-id)"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "duo-unknown-field t.yaml:15:14: `$.response.users` of the answer of `GET /admin/v1/phones/{phone_id}` is a list: `.user_id` finds nothing in it | a name selects a field of an object, not of a list | write `$.response.users[0].user_id` (the first) or `$.response.users[*].user_id` (every one)"
    );
    assert!(c.diagnostics().all(|d| !d.is_error()), "warnings only");
    assert!(c.get("t.duo").is_some(), "a warning does not stop compiling");
}

#[test]
fn a_reconcile_read_is_checked_like_a_call() {
    let found = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/phones\n    body: { number: \"+15555550100\" }\n    extract: { id: $.response.phone_id }\n    reconcile:\n      path: /admin/v1/phones\n      query: { numbr: \"+15555550100\" }\n      extract: { id: \"$.response[*].phone_idd\" }\n      done: \"{{self.id}}\"",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("duo-unknown-param t.yaml:17:16: `GET /admin/v1/phones` has no parameter `numbr`"),
        "{found:?}"
    );
    // Once the error is fixed, the read's extraction is warned about.
    let fixed = check(
        "    integration: duo_admin\n    method: POST\n    path: /admin/v1/phones\n    body: { number: \"+15555550100\" }\n    extract: { id: $.response.phone_id }\n    reconcile:\n      path: /admin/v1/phones\n      query: { number: \"+15555550100\" }\n      extract: { id: \"$.response[*].phone_idd\" }\n      done: \"{{self.id}}\"",
    );
    assert_eq!(fixed.len(), 1, "{fixed:?}");
    assert!(
        fixed[0].starts_with(
            "duo-unknown-field t.yaml:18:22: the answer of `GET /admin/v1/phones` has no field `phone_idd`"
        ),
        "{fixed:?}"
    );
}

#[test]
fn the_permissions_of_a_flow_include_its_subflows_and_their_reconcile_reads() {
    let reader = "id: t.reader
integrations: { duo_admin: { kind: duo_admin } }
nodes:
  - id: get
    kind: rest_call
    integration: duo_admin
    method: GET
    path: /admin/v1/users
outputs:
  s: \"{{nodes.get.status}}\"
";
    let writer = "id: t.writer
integrations: { admin: { kind: duo_admin }, auth: { kind: duo_auth } }
nodes:
  - id: read
    kind: subflow
    flow: t.reader
    integrations: { duo_admin: admin }
  - id: log
    kind: rest_call
    integration: admin
    method: GET
    path: /admin/v2/logs/authentication
    query: { mintime: 1, maxtime: 2 }
  - id: push
    kind: rest_call
    integration: auth
    method: POST
    path: /auth/v2/auth
    body: { username: x, factor: push }
    reconcile: { none: a push cannot be read back }
outputs:
  s: \"{{nodes.read.s}} {{nodes.log.status}} {{nodes.push.status}}\"
";
    let plain = "id: t.plain
integrations: { web: { kind: http } }
nodes:
  - id: get
    kind: rest_call
    integration: web
    method: GET
    path: /admin/v1/users
    query: { anything: 1 }
outputs:
  s: \"{{nodes.get.status}}\"
";
    let c = catalog(&[("reader.yaml", reader), ("writer.yaml", writer), ("plain.yaml", plain)]);
    assert_eq!(report(&c), Vec::<String>::new());
    let permissions = c.permissions();
    assert_eq!(permissions["t.reader"], ["Grant read resource"]);
    assert_eq!(permissions["t.writer"], ["Auth API application", "Grant read log", "Grant read resource"]);
    assert_eq!(permissions["t.plain"], Vec::<String>::new(), "an http slot is not Duo");
}
