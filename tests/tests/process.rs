//! Processes under test, with real programs: busybox httpd in one
//! namespace serving busybox wget in another, killed, restarted with the
//! same arguments, terminated gracefully or not; logs captured per
//! process across restarts.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use wren_tests::net::{HostId, Net};
use wren_tests::process::{Proc, ProcSpec};
use wren_tests::{TestDir, eventually, require, require_netns};

const PATIENCE: Duration = Duration::from_secs(30);

fn busybox() -> Result<(), String> {
    wren_tests::cmd::run(std::process::Command::new("busybox").arg("true"))
        .map(drop)
        .map_err(|e| format!("busybox is needed (package busybox-static): {e}"))
}

fn killed_by(status: ExitStatus, signal: Signal) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(signal as i32)
}

/// `busybox wget` from `from` (at most 5 s; busybox 1.35's own `wget -T`
/// crashes); Ok with the body, Err with why not.
fn fetch(net: &Net, from: HostId, url: &str) -> Result<String, String> {
    let out = net
        .ns(from)
        .command("busybox")
        .args(["timeout", "5", "busybox", "wget", "-q", "-O", "-", url])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn a_server_in_a_namespace_is_killed_and_restarted_with_the_same_arguments() {
    let name = "a_server_in_a_namespace_is_killed_and_restarted_with_the_same_arguments";
    if !require_netns(name) || !require(name, busybox()) {
        return;
    }
    let dir = TestDir::new(name).unwrap();
    let www = dir.subdir("www").unwrap();
    std::fs::write(www.join("index.html"), "hello from a namespace\n").unwrap();
    let net = Net::new("httpd", &["server", "client"]).unwrap();
    let (server, client) = (HostId(0), HostId(1));
    let listen = format!("{}:8080", net.ip(server));
    let url = format!("http://{listen}/index.html");
    let spec = ProcSpec::new("httpd", "busybox")
        .args(["httpd", "-f", "-vv", "-p", &listen, "-h"])
        .arg(&www)
        .netns(net.ns(server));
    let mut httpd = Proc::start(spec, dir.path()).unwrap();

    let body = eventually("httpd to serve", PATIENCE, || fetch(&net, client, &url)).unwrap();
    assert_eq!(body, "hello from a namespace\n");

    let status = httpd.kill().unwrap();
    assert!(killed_by(status, Signal::SIGKILL), "{status}");
    assert!(!httpd.is_running());
    assert!(fetch(&net, client, &url).is_err());

    httpd.restart().unwrap();
    assert_eq!(httpd.starts(), 2);
    let body = eventually("httpd to serve again", PATIENCE, || {
        fetch(&net, client, &url)
    })
    .unwrap();
    assert_eq!(body, "hello from a namespace\n");
    // Both runs logged into the same file, the restart marked.
    httpd
        .wait_for_output("start #2", PATIENCE)
        .unwrap_or_else(|e| panic!("{e}\n{}", httpd.tails()));
    let log = httpd.stderr();
    assert_eq!(log.matches("url:/index.html").count(), 2, "{log}");
}

#[test]
fn terminate_is_graceful_when_the_process_cooperates_and_kills_when_it_does_not() {
    let name = "terminate_is_graceful_when_the_process_cooperates_and_kills_when_it_does_not";
    if !require(name, busybox()) {
        return;
    }
    let dir = TestDir::new(name).unwrap();
    let polite = ProcSpec::new("polite", "busybox").args([
        "sh",
        "-c",
        "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut p = Proc::start(polite, dir.path()).unwrap();
    p.wait_for_output("ready", PATIENCE).unwrap();
    let status = p.terminate(PATIENCE).unwrap();
    assert_eq!(status.code(), Some(3), "{}", p.tails());
    assert!(p.stdout().contains("got TERM"));

    let stubborn = ProcSpec::new("stubborn", "busybox").args([
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut s = Proc::start(stubborn, dir.path()).unwrap();
    s.wait_for_output("ready", PATIENCE).unwrap();
    let status = s.terminate(Duration::from_millis(200)).unwrap();
    assert!(killed_by(status, Signal::SIGKILL), "{status}");
}

#[test]
fn output_environment_and_directory_are_the_processs_own() {
    let name = "output_environment_and_directory_are_the_processs_own";
    if !require(name, busybox()) {
        return;
    }
    let dir = TestDir::new(name).unwrap();
    let work = dir.subdir("work").unwrap();
    let spec = ProcSpec::new("printer", "busybox")
        .args(["sh", "-c", "echo out $GREETING; pwd; echo err >&2; exit 7"])
        .env("GREETING", "hello")
        .cwd(&work);
    let mut p = Proc::start(spec, dir.path()).unwrap();
    let status = p.wait_exit(PATIENCE).unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(p.stdout(), format!("out hello\n{}\n", work.display()));
    assert_eq!(p.stderr(), "err\n");
    assert!(p.stdout_path().starts_with(dir.path()));
    assert!(p.tails().contains("---- printer stderr"));
    assert!(
        p.signal(Signal::SIGTERM).is_err(),
        "signalling an exited process"
    );
}

#[test]
fn processes_in_a_namespace_still_see_the_cgroup_hierarchy() {
    // Why the harness enters namespaces with nsenter, not `ip netns exec`:
    // the latter remounts /sys and hides /sys/fs/cgroup from wren clients.
    let name = "processes_in_a_namespace_still_see_the_cgroup_hierarchy";
    if !require_netns(name) || !require(name, busybox()) {
        return;
    }
    let dir = TestDir::new(name).unwrap();
    let net = Net::new("cgroup", &["a"]).unwrap();
    let spec = ProcSpec::new("ls", "busybox")
        .args(["sh", "-c", "ls /sys/fs/cgroup; ip -4 -o addr"])
        .netns(net.ns(HostId(0)));
    let mut p = Proc::start(spec, dir.path()).unwrap();
    assert!(p.wait_exit(PATIENCE).unwrap().success(), "{}", p.tails());
    let out = p.stdout();
    let host_cgroups = std::fs::read_dir("/sys/fs/cgroup").unwrap().count();
    assert!(host_cgroups > 0);
    assert!(out.lines().count() > host_cgroups, "{out}");
    assert!(out.contains(&net.ip(HostId(0)).to_string()), "{out}");
}
