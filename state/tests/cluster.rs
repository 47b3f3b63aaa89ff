//! A three-server cluster in one process: elections, writes, failures,
//! partitions, restarts from disk, snapshots.

mod common;

use common::{Cluster, PATIENCE, block_on, register};
use wren_state::{Bootstrap, Outcome, Peer, ReadError, Role, Table, WriteError};

#[test]
fn elects_a_leader_that_writes_and_followers_that_redirect() {
    let c = Cluster::new("elect", 3);
    let leader = c.wait_leader(&c.ids);
    let written = block_on(c.node(leader).write(register("web"))).unwrap();
    assert!(matches!(
        written.outcome,
        Outcome::Job {
            version: 0,
            new_version: true,
            ..
        }
    ));

    let follower = c.ids.iter().copied().find(|&id| id != leader).unwrap();
    match block_on(c.node(follower).write(register("db"))) {
        Err(WriteError::NotLeader {
            leader: Some(Peer { id, addr }),
        }) => {
            assert_eq!(id, leader);
            assert_eq!(addr, format!("10.0.0.{leader}:4648"));
        }
        other => panic!("a follower must redirect, got {other:?}"),
    }
    for state in c.wait_applied(&c.ids, written.index) {
        assert_eq!(state.job("web").unwrap().create_index, written.index);
        assert!(state.eval("eval-web").is_some());
        assert!(state.job("db").is_none());
    }
    // Bootstrapping again changes nothing, on any server.
    let members: Vec<Peer> = c
        .node(leader)
        .status()
        .members
        .iter()
        .map(|m| Peer {
            id: m.id,
            addr: m.addr.clone(),
        })
        .collect();
    assert_eq!(members.len(), 3);
    for id in &c.ids {
        assert_eq!(
            block_on(c.node(*id).initialize(members.clone())).unwrap(),
            Bootstrap::AlreadyInitialized
        );
    }
}

#[test]
fn consistent_reads_only_on_the_leader() {
    let c = Cluster::new("reads", 3);
    let leader = c.wait_leader(&c.ids);
    let written = block_on(c.node(leader).write(register("web"))).unwrap();
    let state = block_on(c.node(leader).consistent_snapshot()).unwrap();
    assert!(state.index() >= written.index && state.job("web").is_some());
    let follower = c.ids.iter().copied().find(|&id| id != leader).unwrap();
    assert!(matches!(
        block_on(c.node(follower).consistent_snapshot()),
        Err(ReadError::NotLeader { leader: Some(_) })
    ));
    // A stale read on the follower catches up without a barrier.
    let stale = c.wait_applied(&[follower], written.index).remove(0);
    assert!(stale.job("web").is_some());
}

#[test]
fn a_blocking_query_on_a_follower_wakes_on_replicated_writes() {
    let c = Cluster::new("blocking", 3);
    let leader = c.wait_leader(&c.ids);
    let follower = c.ids.iter().copied().find(|&id| id != leader).unwrap();
    let seen = c.node(follower).snapshot().table_index(Table::Jobs);
    let writer = c.node(leader).clone();
    let handle = std::thread::spawn(move || block_on(writer.write(register("web"))).unwrap());
    let state = block_on(c.node(follower).wait_for_index(Table::Jobs, seen, PATIENCE));
    let written = handle.join().unwrap();
    assert!(state.table_index(Table::Jobs) > seen);
    assert!(state.table_index(Table::Jobs) <= written.index);
    assert!(state.job("web").is_some());
}

#[test]
fn killing_the_leader_elects_another_that_keeps_writing() {
    let mut c = Cluster::new("kill", 3);
    let first = c.wait_leader(&c.ids);
    let before = block_on(c.node(first).write(register("before"))).unwrap();
    c.kill(first);
    let rest: Vec<u64> = c.running();
    let second = c.wait_leader(&rest);
    assert_ne!(second, first);
    let after = block_on(c.node(second).write(register("after"))).unwrap();
    assert!(after.index > before.index);

    // The old leader comes back from disk and catches up.
    c.start(first);
    let states = c.wait_applied(&c.ids, after.index);
    for s in &states {
        assert!(s.job("before").is_some() && s.job("after").is_some());
        assert!(s.same_tables(&states[0]));
    }
    assert_eq!(c.node(first).status().role, Role::Follower);
}

#[test]
fn a_partitioned_leader_cannot_commit_and_healing_converges() {
    let c = Cluster::new("partition", 3);
    let old = c.wait_leader(&c.ids);
    let base = block_on(c.node(old).write(register("base"))).unwrap();
    c.wait_applied(&c.ids, base.index);

    c.net.isolate(old);
    let majority: Vec<u64> = c.ids.iter().copied().filter(|&id| id != old).collect();
    // The minority leader may accept the proposal but can never commit it.
    let stuck = c.node(old).clone();
    let minority_write = std::thread::spawn(move || {
        let write = async { Some(stuck.write(register("minority")).await) };
        let give_up = async {
            async_io::Timer::after(PATIENCE).await;
            None
        };
        block_on(smol::future::or(write, give_up))
    });

    let new = c.wait_leader(&majority);
    block_on(c.node(new).write(register("majority"))).unwrap();
    assert!(c.node(old).snapshot().job("majority").is_none());
    assert!(
        c.node(old).snapshot().job("minority").is_none(),
        "the minority committed alone"
    );

    c.net.heal();
    let leader = c.wait_leader(&c.ids);
    assert_ne!(
        leader, old,
        "the healed minority must not take over with a shorter log"
    );
    let last = block_on(c.node(leader).write(register("healed"))).unwrap();
    let states = c.wait_applied(&c.ids, last.index);
    for s in &states {
        assert!(s.job("majority").is_some() && s.job("healed").is_some());
        assert!(
            s.job("minority").is_none(),
            "the minority's entry was never committed"
        );
        assert!(s.same_tables(&states[0]));
    }
    match minority_write.join().unwrap() {
        Some(Ok(w)) => panic!("the minority's write was acknowledged at {}", w.index),
        Some(Err(e)) => assert!(
            matches!(
                e,
                WriteError::OutcomeUnknown { .. } | WriteError::NotLeader { .. }
            ),
            "{e}"
        ),
        None => panic!("the minority's write never returned"),
    }
}

#[test]
fn restarting_every_server_from_disk_keeps_the_state() {
    let mut c = Cluster::new("restart", 3);
    let leader = c.wait_leader(&c.ids);
    let mut last = 0;
    for i in 0..25 {
        last = block_on(c.node(leader).write(register(&format!("job-{i}"))))
            .unwrap()
            .index;
    }
    let before = c.wait_applied(&c.ids, last);
    // Two crash, one stops cleanly.
    let ids = c.ids.clone();
    c.kill(ids[0]);
    c.stop(ids[1]);
    c.kill(ids[2]);
    for id in &ids {
        c.start(*id);
        // Before any election: the state a server knew committed is back.
        let recovered = c.node(*id).snapshot();
        assert!(
            recovered.index() >= last,
            "server {id} reopened at {}",
            recovered.index()
        );
        assert!(recovered.same_tables(&before[0]));
    }
    let leader = c.wait_leader(&c.ids);
    let after = block_on(c.node(leader).consistent_snapshot()).unwrap();
    assert!(
        after.same_tables(&before[0]),
        "the leader restarted with different tables"
    );
    for s in c.wait_applied(&c.ids, after.index()) {
        assert!(s.same_tables(&before[0]));
        assert_eq!(s.counts().jobs, 25);
    }
}

#[test]
fn a_lagging_follower_is_caught_up_by_a_snapshot() {
    let c = Cluster::with("snapshot", 3, |config| {
        config.snapshot.every_entries = 16;
        config.snapshot.keep_entries = 4;
        config.snapshot_chunk_bytes = 1024;
    });
    let leader = c.wait_leader(&c.ids);
    let lagging = c.ids.iter().copied().find(|&id| id != leader).unwrap();
    c.net.isolate(lagging);
    let majority: Vec<u64> = c.ids.iter().copied().filter(|&id| id != lagging).collect();
    let leader = c.wait_leader(&majority);
    let mut last = 0;
    for i in 0..60 {
        last = block_on(c.node(leader).write(register(&format!("job-{i}"))))
            .unwrap()
            .index;
    }
    block_on(c.node(leader).trigger_snapshot()).unwrap();
    c.wait_status(leader, "a purged log", |s| s.purged_index >= 20);
    c.net.heal();
    let states = c.wait_applied(&c.ids, last);
    // Entries up to 20 exist nowhere but in the leader's snapshot.
    c.wait_status(lagging, "an installed snapshot", |s| s.snapshot_index >= 20);
    for s in &states {
        assert_eq!(s.counts().jobs, 60);
        assert!(s.same_tables(&states[0]));
    }
}

#[test]
fn a_log_grown_past_its_byte_budget_is_snapshotted_and_purged() {
    let c = Cluster::with("bytes", 1, |config| {
        config.snapshot.every_entries = 1_000_000;
        config.snapshot.every_bytes = 32 << 10;
        config.snapshot.keep_entries = 0;
    });
    let leader = c.wait_leader(&c.ids);
    let mut last = 0;
    for i in 0..100 {
        // A 900-character job id (twice: job and evaluation) makes each
        // entry about 2 KB.
        last = block_on(c.node(leader).write(register(&format!("job-{i:0>900}"))))
            .unwrap()
            .index;
    }
    c.wait_status(leader, "a snapshot taken for the log's size", |s| {
        s.snapshot_index >= 20 && s.purged_index >= 20
    });
    let state = c.wait_applied(&c.ids, last);
    assert_eq!(state[0].counts().jobs, 100);
}

#[test]
fn snapshot_save_on_one_cluster_restores_on_a_fresh_one() {
    let a = Cluster::new("save", 3);
    let leader = a.wait_leader(&a.ids);
    for i in 0..10 {
        block_on(a.node(leader).write(register(&format!("job-{i}")))).unwrap();
    }
    let mut file = Vec::new();
    let saved = block_on(a.node(leader).save_snapshot(&mut file)).unwrap();
    assert_eq!(saved.bytes, file.len());
    let original = block_on(a.node(leader).consistent_snapshot()).unwrap();

    let b = Cluster::new("restore", 3);
    let leader_b = b.wait_leader(&b.ids);
    block_on(b.node(leader_b).write(register("overwritten"))).unwrap();
    let restored = block_on(b.node(leader_b).restore_snapshot(&mut file.as_slice())).unwrap();
    for s in b.wait_applied(&b.ids, restored.index) {
        assert!(s.job("overwritten").is_none());
        assert_eq!(s.counts(), original.counts());
        for job in original.jobs() {
            assert_eq!(s.job(&job.id).map(|j| (**j).clone()), Some((**job).clone()));
        }
    }
    let mut garbage = &b"definitely not a snapshot"[..];
    assert!(block_on(b.node(leader_b).restore_snapshot(&mut garbage)).is_err());
}

#[test]
fn voters_join_and_leave() {
    let mut c = Cluster::new("members", 3);
    let leader = c.wait_leader(&c.ids);
    // A fourth server starts empty and is added by the leader.
    c.ids.push(4);
    c.start(4);
    block_on(c.node(leader).add_voter(4, "10.0.0.4:4648")).unwrap();
    let status = c.node(leader).status();
    assert_eq!(status.members.iter().filter(|m| m.voter).count(), 4);
    let written = block_on(c.node(leader).write(register("web"))).unwrap();
    assert!(c.wait_applied(&[4], written.index)[0].job("web").is_some());

    block_on(c.node(leader).remove_peer(4)).unwrap();
    let status = c.node(leader).status();
    assert_eq!(status.members.len(), 3, "{status:?}");
    assert!(status.members.iter().all(|m| m.id != 4));
    // Removing it again is a no-op.
    block_on(c.node(leader).remove_peer(4)).unwrap();
}

#[test]
fn appends_are_split_to_fit_the_wire() {
    let c = Cluster::with("split", 3, |config| {
        config.max_message_bytes = 16 << 10;
        config.snapshot_chunk_bytes = 8 << 10;
    });
    c.net.limit_message_bytes(20 << 10);
    let leader = c.wait_leader(&c.ids);
    let lagging = c.ids.iter().copied().find(|&id| id != leader).unwrap();
    c.net.isolate(lagging);
    let majority: Vec<u64> = c.ids.iter().copied().filter(|&id| id != lagging).collect();
    let leader = c.wait_leader(&majority);
    let mut last = 0;
    for i in 0..40 {
        // About 5 KB each: the follower's catch-up is ~200 KB of entries.
        let mut command = register(&format!("job-{i}"));
        if let wren_state::Command::RegisterJob(r) = &mut command {
            r.job.meta.insert("padding".into(), "x".repeat(5000));
        }
        last = block_on(c.node(leader).write(command)).unwrap().index;
    }
    c.net.heal();
    let states = c.wait_applied(&c.ids, last);
    for s in &states {
        assert_eq!(s.counts().jobs, 40);
        assert!(s.same_tables(&states[0]));
    }
}
