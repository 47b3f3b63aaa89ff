//! The cluster helper's parts that exist before the agent does: config
//! files that read back through the HCL reader the agent uses,
//! certificates from the real `wren tls` CLI, and a prepared region (net,
//! certificates, configs, CLI environment) ready to start.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use wren_model::Value;
use wren_model::hcl::{Ctx, Reader, Source, block_span, parse_body};
use wren_tests::bin;
use wren_tests::cluster::{
    AgentFile, ClientBlock, Cluster, ClusterSpec, Kind, Pki, Role, ServerBlock, TlsFiles,
};
use wren_tests::{TestDir, require, require_netns};

fn tricky_file() -> AgentFile {
    AgentFile {
        name: "s1".into(),
        region: "eu-west".into(),
        datacenter: "dc \"quoted\"".into(),
        data_dir: PathBuf::from("/tmp/a dir/${not_a_var}/back\\slash"),
        bind_addr: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
        port: 5684,
        advertise: SocketAddr::from(([10, 99, 0, 1], 5684)),
        server: Some(ServerBlock {
            bootstrap_expect: 3,
            retry_join: vec!["10.99.0.1:5684".into(), "10.99.0.2:5684".into()],
            raft_multiplier: 2,
            extra: "heartbeat_grace = \"5s\"\n".into(),
        }),
        client: Some(ClientBlock {
            servers: vec!["10.99.0.1:5684".into()],
            node_class: Some("pi".into()),
            meta: BTreeMap::from([("rack".into(), "r1".into()), ("zone".into(), "%{x}".into())]),
            extra: String::new(),
        }),
        raw_exec: true,
        tls: TlsFiles {
            ca_file: "/pki/ca.pem".into(),
            cert_file: "/pki/s1.pem".into(),
            key_file: "/pki/s1-key.pem".into(),
        },
        extra: "sled_cache_mb = 8".into(),
    }
}

#[test]
fn agent_config_files_read_back_through_the_hcl_reader() {
    let file = tricky_file();
    let text = file.render();
    let src = Source::new("agent.hcl", &text);
    let body = parse_body(&src).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut ctx = Ctx::new(&src);
    let mut r = Reader::new(&body, "agent", "the agent configuration", 0..0);
    assert_eq!(r.string(&mut ctx, "name").as_deref(), Some("s1"));
    assert_eq!(
        r.string(&mut ctx, "datacenter").as_deref(),
        Some("dc \"quoted\"")
    );
    assert_eq!(
        r.string(&mut ctx, "data_dir").map(PathBuf::from),
        Some(file.data_dir.clone())
    );
    assert_eq!(
        r.string(&mut ctx, "bind_addr").as_deref(),
        Some("10.99.0.1")
    );
    assert_eq!(r.int(&mut ctx, "sled_cache_mb", 1, 1 << 20), Some(8));

    let server = r.block(&mut ctx, "server").expect("a server block");
    let mut sr = Reader::new(&server.body, "agent.server", "server", block_span(server));
    assert_eq!(sr.bool(&mut ctx, "enabled"), Some(true));
    assert_eq!(sr.int(&mut ctx, "bootstrap_expect", 0, 9), Some(3));
    assert_eq!(sr.int(&mut ctx, "raft_multiplier", 1, 10), Some(2));
    assert_eq!(
        sr.string_list(&mut ctx, "retry_join"),
        Some(vec![
            "10.99.0.1:5684".to_owned(),
            "10.99.0.2:5684".to_owned()
        ])
    );
    assert_eq!(
        sr.string(&mut ctx, "heartbeat_grace").as_deref(),
        Some("5s")
    );

    let client = r.block(&mut ctx, "client").expect("a client block");
    let mut cr = Reader::new(&client.body, "agent.client", "client", block_span(client));
    assert_eq!(cr.string(&mut ctx, "node_class").as_deref(), Some("pi"));
    assert_eq!(
        cr.string_map(&mut ctx, "meta"),
        file.client.as_ref().unwrap().meta
    );

    let plugins = r.blocks("plugin");
    assert_eq!(plugins.len(), 1);
    let mut pr = Reader::new(&plugins[0].body, "plugin", "plugin", block_span(plugins[0]));
    let config = pr.block(&mut ctx, "config").expect("plugin config");
    let mut cfg = Reader::new(&config.body, "config", "config", block_span(config));
    assert_eq!(
        cfg.value(&mut ctx, "enabled").map(|v| v.0),
        Some(Value::Bool(true))
    );

    let tls = r.block(&mut ctx, "tls").expect("a tls block");
    let mut tr = Reader::new(&tls.body, "agent.tls", "tls", block_span(tls));
    assert_eq!(
        tr.string(&mut ctx, "key_file").as_deref(),
        Some("/pki/s1-key.pem")
    );
    assert!(ctx.errors.is_empty(), "{:?}", ctx.errors);
}

/// Whether the binary knows `wren <args>` (asks for its help).
fn wren_knows(args: &[&str]) -> Result<(), String> {
    let wren = bin::wren().map_err(|e| e.to_string())?;
    let out = Command::new(wren)
        .args(args)
        .arg("--help")
        .output()
        .map_err(|e| format!("running {}: {e}", wren.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "this wren binary has no `wren {}` yet ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn certificates_come_from_the_real_cli() {
    let name = "certificates_come_from_the_real_cli";
    if !require(name, wren_knows(&["tls"])) {
        return;
    }
    let dir = TestDir::new(name).unwrap();
    let wren = bin::wren().unwrap();
    let pki = Pki::create(wren, dir.path(), "eu").unwrap();
    let pem = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    assert!(pem(&pki.ca.cert).contains("BEGIN CERTIFICATE"));
    assert!(pem(&pki.ca.key).contains("PRIVATE KEY"));
    let ip = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 7));
    let mut seen = Vec::new();
    for (role, who) in [
        (Role::Server, "s1"),
        (Role::Server, "s2"),
        (Role::Client, "c1"),
        (Role::Cli, "op"),
    ] {
        let pair = pki.issue(role, who, &[ip]).unwrap();
        assert!(pem(&pair.cert).contains("BEGIN CERTIFICATE"), "{pair:?}");
        assert!(pem(&pair.key).contains("PRIVATE KEY"), "{pair:?}");
        assert!(pair.cert.starts_with(dir.path().join(who)));
        seen.push(pem(&pair.cert));
    }
    // Two servers, two different certificates (nothing was overwritten).
    assert_ne!(seen[0], seen[1]);
}

#[test]
fn a_prepared_region_has_configs_certificates_and_a_cli() {
    let name = "a_prepared_region_has_configs_certificates_and_a_cli";
    if !require_netns(name) || !require(name, wren_knows(&["tls"])) {
        return;
    }
    let spec = ClusterSpec::new(3, 2).customize(|f| {
        if let Some(c) = f.client.as_mut() {
            c.node_class = Some("edge".into());
        }
    });
    let cluster = Cluster::prepare("prepared", &spec).unwrap();
    assert_eq!(cluster.servers().len(), 3);
    assert_eq!(cluster.clients().len(), 2);
    let addrs = cluster.server_addrs();
    for a in cluster.agents() {
        let text = std::fs::read_to_string(&a.config_path).unwrap();
        assert_eq!(text, a.config.render());
        assert!(a.proc().is_none(), "prepare starts nothing");
        assert_eq!(a.addr.ip(), IpAddr::V4(cluster.net().ip(a.host)));
        assert!(a.cert.cert.is_file() && a.cert.key.is_file());
        match a.kind {
            Kind::Server => {
                let s = a.config.server.as_ref().unwrap();
                assert_eq!(s.bootstrap_expect, 3);
                assert_eq!(s.retry_join.len(), 3);
                assert!(a.config.client.is_none());
            }
            Kind::Client => {
                let c = a.config.client.as_ref().unwrap();
                assert_eq!(
                    c.servers,
                    addrs.iter().map(ToString::to_string).collect::<Vec<_>>()
                );
                assert_eq!(c.node_class.as_deref(), Some("edge"));
                assert!(a.config.raw_exec);
            }
        }
    }
    // The CLI runs in the operator's namespace with the region's TLS files.
    let cmd = cluster.cli().command(["server", "members"]);
    let env: BTreeMap<String, String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    assert_eq!(
        env.get("WREN_ADDR").map(String::as_str),
        Some("coaps+tcp://10.99.0.1:5684,coaps+tcp://10.99.0.2:5684,coaps+tcp://10.99.0.3:5684")
    );
    assert_eq!(
        env.get("WREN_CACERT"),
        Some(&cluster.pki().ca.cert.to_string_lossy().into_owned())
    );
    assert_eq!(
        env.get("WREN_CLIENT_CERT"),
        Some(&cluster.cli_cert().cert.to_string_lossy().into_owned())
    );
    let ns = cluster.net().ns(cluster.operator()).path();
    assert_eq!(
        cmd.get_args()
            .next()
            .map(|a| a.to_string_lossy().into_owned()),
        Some(format!("--net={}", ns.display()))
    );
    // And the operator reaches every agent's host.
    let out = cluster
        .net()
        .ns(cluster.operator())
        .ip(["-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(out.contains("10.99.0.6/24"), "{out}");
}

#[test]
fn the_cli_runner_answers_fails_parses_and_times_out() {
    let name = "the_cli_runner_answers_fails_parses_and_times_out";
    if !require(
        name,
        wren_tests::cmd::run(Command::new("busybox").arg("true"))
            .map(drop)
            .map_err(|e| format!("busybox is needed: {e}")),
    ) {
        return;
    }
    use std::time::{Duration, Instant};
    use wren_tests::cluster::{Cli, CliError};
    let sh = Cli::new("busybox".as_ref(), None)
        .env("GREETING", "hello")
        .timeout(Duration::from_secs(30));
    assert_eq!(sh.run(["sh", "-c", "echo $GREETING"]).unwrap(), "hello\n");
    let v = sh.json(["echo", r#"{"leader": "s2"}"#]).unwrap();
    assert_eq!(v["leader"], "s2");
    assert!(matches!(
        sh.json(["echo", "not json"]),
        Err(CliError::Json { .. })
    ));
    match sh.run(["sh", "-c", "echo oops >&2; exit 4"]) {
        Err(CliError::Failed { status, stderr, .. }) => {
            assert_eq!(status.code(), Some(4));
            assert_eq!(stderr, "oops");
        }
        other => panic!("{other:?}"),
    }
    // A command that does not answer in time is killed, not waited for.
    let short = sh.clone().timeout(Duration::from_millis(200));
    let start = Instant::now();
    match short.output(["sleep", "600"]) {
        Err(CliError::TimedOut { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(600));

    // And the real binary answers through it.
    let wren = Cli::new(bin::wren().unwrap(), None);
    let version = wren.run(["version"]).unwrap();
    assert!(version.contains("wren"), "{version}");
}
