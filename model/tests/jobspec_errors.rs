//! Malformed job files: each fails, names `file:line:col`, and says what is
//! wrong by name.

use wren_model::jobspec;

/// (name, file text, expected "line:col" of the first error, text the
/// message must contain)
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "syntax",
        "job \"x\" {\n  group \"g\" {\n    count = = 2\n",
        "3:13",
        "syntax error",
    ),
    (
        "no job",
        "variable \"v\" { default = 1 }\n",
        "1:1",
        "no job block",
    ),
    (
        "two jobs",
        "job \"a\" {}\njob \"b\" {}\n",
        "2:1",
        "only one job block is allowed",
    ),
    (
        "unknown attribute",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      resources {\n        cpus = 5\n      }\n    }\n  }\n}\n",
        "6:9",
        "unknown attribute \"cpus\" in resources",
    ),
    (
        "unknown block",
        "job \"x\" {\n  groop \"g\" {}\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:3",
        "unknown block \"groop\"",
    ),
    (
        "unsupported block",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      template {}\n    }\n  }\n}\n",
        "5:7",
        "\"template\" in task \"t\" is not supported",
    ),
    (
        "bad job type",
        "job \"x\" {\n  type = \"servise\"\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:10",
        "unknown job type \"servise\"",
    ),
    (
        "unknown operator",
        "job \"x\" {\n  constraint {\n    attribute = \"${attr.a}\"\n    operator = \"~=\"\n    value = \"1\"\n  }\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "4:16",
        "unknown operator \"~=\"",
    ),
    (
        "regexp does not compile",
        "job \"x\" {\n  group \"g\" {\n    constraint {\n      attribute = \"${attr.os.name}\"\n      regexp = \"(debian\"\n    }\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "5:16",
        "regexp \"(debian\" does not compile",
    ),
    (
        "version constraint does not parse",
        "job \"x\" {\n  group \"g\" {\n    constraint {\n      attribute = \"${attr.kernel.version}\"\n      operator = \"version\"\n      value = \">= five\"\n    }\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "6:15",
        "invalid version \">= five\"",
    ),
    (
        "bad duration",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      kill_timeout = \"5 seconds\"\n    }\n  }\n}\n",
        "5:22",
        "invalid duration \"5 seconds\"",
    ),
    (
        "task without driver",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      config { command = \"/bin/true\" }\n    }\n  }\n}\n",
        "3:10",
        "task \"t\" has no driver",
    ),
    (
        "negative count",
        "job \"x\" {\n  group \"g\" {\n    count = -1\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "3:13",
        "count = -1 is out of range",
    ),
    (
        "job name with a space",
        "job \"my job\" {\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "1:5",
        "job name \"my job\" contains whitespace",
    ),
    (
        "task name with a slash",
        "job \"x\" {\n  group \"g\" {\n    task \"a/b\" { driver = \"exec\" }\n  }\n}\n",
        "3:10",
        "task name \"a/b\" must not contain slashes",
    ),
    (
        "duplicate group",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:9",
        "group \"g\" is defined twice",
    ),
    (
        "distinct_hosts on a task",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      constraint {\n        distinct_hosts = true\n      }\n    }\n  }\n}\n",
        "5:7",
        "distinct_hosts is not allowed on a task",
    ),
    (
        "cpu and cores",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      resources {\n        cpu = 100\n        cores = 1\n      }\n    }\n  }\n}\n",
        "5:7",
        "set either cpu or cores",
    ),
    (
        "memory below the minimum",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      resources {\n        memory = 4\n      }\n    }\n  }\n}\n",
        "6:18",
        "memory must be at least 10 MB",
    ),
    (
        "system job with count 2",
        "job \"x\" {\n  type = \"system\"\n  group \"g\" {\n    count = 2\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "4:13",
        "count must be 0 or 1",
    ),
    (
        "periodic service",
        "job \"x\" {\n  periodic {\n    cron = \"@daily\"\n  }\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:3",
        "periodic is only allowed for batch",
    ),
    (
        "bad cron",
        "job \"x\" {\n  type = \"batch\"\n  periodic {\n    cron = \"61 * * * *\"\n  }\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "4:12",
        "invalid cron expression",
    ),
    (
        "spread over 100 percent",
        "job \"x\" {\n  group \"g\" {\n    spread {\n      attribute = \"${meta.rack}\"\n      target \"a\" { percent = 70 }\n      target \"b\" { percent = 40 }\n    }\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "3:5",
        "add up to 110",
    ),
    (
        "affinity weight zero",
        "job \"x\" {\n  affinity {\n    attribute = \"${node.datacenter}\"\n    value = \"dc1\"\n    weight = 0\n  }\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "5:14",
        "affinity weight 0",
    ),
    (
        "attribute set twice",
        "job \"x\" {\n  priority = 10\n  priority = 20\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "3:3",
        "redefined attribute",
    ),
    (
        "unknown variable",
        "job \"x\" {\n  datacenters = [foo]\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:18",
        "unknown variable \"foo\"",
    ),
    (
        "function call",
        "job \"x\" {\n  region = upper(\"eu\")\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:12",
        "function calls are not supported",
    ),
    (
        "variable without value",
        "variable \"dc\" {\n  type = string\n}\njob \"x\" {\n  datacenters = [var.dc]\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "1:1",
        "variable \"dc\" has no default",
    ),
    (
        "lifecycle without hook",
        "job \"x\" {\n  group \"g\" {\n    task \"m\" { driver = \"exec\" }\n    task \"t\" {\n      driver = \"exec\"\n      lifecycle {\n        sidecar = true\n      }\n    }\n  }\n}\n",
        "6:7",
        "lifecycle needs a hook",
    ),
    (
        "poststop sidecar",
        "job \"x\" {\n  group \"g\" {\n    task \"m\" { driver = \"exec\" }\n    task \"t\" {\n      driver = \"exec\"\n      lifecycle {\n        hook = \"poststop\"\n        sidecar = true\n      }\n    }\n  }\n}\n",
        "6:7",
        "poststop tasks cannot be sidecars",
    ),
    (
        "group without label",
        "job \"x\" {\n  group {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:3",
        "group block needs a name",
    ),
    (
        "driver wren does not have",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n    }\n  }\n}\n",
        "4:16",
        "driver \"docker\" is not available",
    ),
    (
        "restarts that cannot fit",
        "job \"x\" {\n  group \"g\" {\n    restart {\n      attempts = 10\n      delay = \"1m\"\n      interval = \"5m\"\n    }\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "3:5",
        "cannot restart 10 times",
    ),
    (
        "unknown kill signal",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      kill_signal = \"SIGNOPE\"\n    }\n  }\n}\n",
        "5:21",
        "unknown signal \"SIGNOPE\"",
    ),
    (
        "bad port label",
        "job \"x\" {\n  group \"g\" {\n    network {\n      port \"my port\" {}\n    }\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "4:7",
        "port label \"my port\"",
    ),
    (
        "string where a number belongs",
        "job \"x\" {\n  group \"g\" {\n    count = \"three\"\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "3:13",
        "count must be a whole number, found \"three\"",
    ),
    (
        "namespace other than default",
        "job \"x\" {\n  namespace = \"prod\"\n  group \"g\" {\n    task \"t\" { driver = \"exec\" }\n  }\n}\n",
        "2:15",
        "wren has no namespaces",
    ),
];

#[test]
fn each_malformed_file_fails_at_the_right_place() {
    let mut failures = Vec::new();
    for (name, text, at, needle) in CASES {
        let file = format!("{}.hcl", name.replace(' ', "-"));
        match jobspec::parse(&file, text) {
            Ok(_) => failures.push(format!("{name}: parsed, expected an error at {at}")),
            Err(errors) => {
                let first = errors.first().expect("errors are never empty");
                let got = format!("{}:{}", first.line, first.col);
                let shown = first.to_string();
                if got != *at
                    || !shown.contains(needle)
                    || !shown.starts_with(&format!("{file}:{at}: "))
                {
                    failures.push(format!(
                        "{name}: expected {file}:{at}: ...{needle}...\n   got: {errors}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = "job \"x\" {\n  priority = 500\n  group \"g\" {\n    count = -2\n    task \"t\" {\n      driver = \"nope\"\n    }\n  }\n}\n";
    let errors = jobspec::parse("many.hcl", text).unwrap_err();
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 4, 6], "{errors}");
}

#[test]
fn later_errors_are_located_by_path() {
    let text = "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      config {\n        comand = \"/bin/true\"\n      }\n    }\n  }\n}\n";
    let (_, located) =
        jobspec::parse_located("later.hcl", text, &jobspec::Options::default()).unwrap();
    let e = located.error("job.group[g].task[t].config.comand", "unknown option");
    assert_eq!(e.to_string(), "later.hcl:6:9: unknown option");
    // An unknown path falls back to its nearest located ancestor.
    let e = located.error("job.group[g].task[t].resources.device[3]", "x");
    assert_eq!((e.line, e.col), (3, 10));
}
