//! Partitioning the leader of a three-server region away from the other
//! two: the old leader (the minority) cannot commit, the majority elects a
//! leader of its own and commits, and once the partition heals every
//! server converges on the majority's history (the minority's write is
//! gone).

mod region_support;

use std::time::Duration;

use region_support::{Read, can_run, name, peers, read, register, start, wait_for_leader};
use wren_tests::cluster::Cli;
use wren_tests::eventually;

/// The commit index a server knows (its own view).
fn committed(cli: &Cli) -> u64 {
    peers(cli, true).unwrap()["committed"].as_u64().unwrap()
}

#[test]
fn a_partitioned_leader_cannot_commit_while_the_majority_elects_and_commits() {
    let test = "a_partitioned_leader_cannot_commit_while_the_majority_elects_and_commits";
    if !can_run(test) {
        return;
    }
    let cluster = start(test, 3);
    let dir = cluster.dir().subdir("jobs").unwrap();
    let servers = cluster.servers();
    let old = wait_for_leader(&cluster, &servers, Duration::from_secs(60));
    let majority: Vec<_> = servers.iter().copied().filter(|&s| s != old).collect();
    let all = cluster.cli().timeout(Duration::from_secs(30));
    let o = register(&all, &dir, "before", 1).unwrap();
    assert!(o.status.success(), "{}", o.stderr);

    let host = |a| cluster.agent(a).host;
    let majority_hosts: Vec<_> = majority.iter().map(|&a| host(a)).collect();
    cluster
        .net()
        .partition(&[host(old)], &majority_hosts)
        .unwrap();
    eprintln!(
        "partitioned {} (the leader) from the others",
        name(&cluster, old)
    );

    // The minority: the write does not commit, and its commit index stays.
    let minority = cluster.cli_to(&[old]).timeout(Duration::from_secs(60));
    let before = committed(&minority);
    let o = register(&minority, &dir, "minority", 2).unwrap();
    assert!(
        !o.status.success(),
        "a leader cut off from its quorum acknowledged a write: {}",
        o.stdout
    );
    eprintln!("minority write refused: {}", o.stderr.trim());
    assert_eq!(
        committed(&minority),
        before,
        "the minority committed something"
    );

    // The majority elects one of its own and commits.
    let new = wait_for_leader(&cluster, &majority, Duration::from_secs(60));
    assert_ne!(new, old);
    let maj = cluster.cli_to(&majority).timeout(Duration::from_secs(30));
    let o = register(&maj, &dir, "majority", 3).unwrap();
    assert!(
        o.status.success(),
        "the majority could not commit: {}",
        o.stderr
    );
    assert_eq!(read(&maj, "majority", false), Ok(Read::Present(3)));

    // Heal: every server follows one leader and holds the majority's
    // history, each read from its own state.
    cluster.net().heal().unwrap();
    wait_for_leader(&cluster, &servers, Duration::from_secs(60));
    for &s in &servers {
        let cli = cluster.cli_to(&[s]).timeout(Duration::from_secs(30));
        eventually(
            &format!("{} to converge", name(&cluster, s)),
            Duration::from_secs(60),
            || {
                let got = (
                    read(&cli, "before", true)?,
                    read(&cli, "majority", true)?,
                    read(&cli, "minority", true)?,
                );
                let want = (Read::Present(1), Read::Present(3), Read::Absent);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            },
        )
        .unwrap();
    }
    let indexes: Vec<u64> = eventually("equal commit indexes", Duration::from_secs(30), || {
        let v: Vec<u64> = servers
            .iter()
            .map(|&s| committed(&cluster.cli_to(&[s]).timeout(Duration::from_secs(30))))
            .collect();
        if v.windows(2).all(|w| w[0] == w[1]) {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    })
    .unwrap();
    eprintln!("converged at commit index {}", indexes[0]);
}
