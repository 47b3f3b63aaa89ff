//! `wren operator raft list-peers|remove-peer` and `wren operator snapshot
//! save|restore`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use argh::FromArgs;

use super::format::{self, columns};
use super::remote::{self, Remote, with_query};
use crate::api::{IndexResponse, RaftConfiguration, StateSnapshot};
use crate::wire::Method;

/// Operate the region: Raft peers and state snapshots.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "operator")]
pub struct OperatorCmd {
    #[argh(subcommand)]
    command: OperatorSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum OperatorSub {
    Raft(RaftCmd),
    Snapshot(SnapshotCmd),
}

/// The region's Raft peers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "raft")]
pub struct RaftCmd {
    #[argh(subcommand)]
    command: RaftSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum RaftSub {
    ListPeers(ListPeersCmd),
    RemovePeer(RemovePeerCmd),
}

crate::wire::api_command! {
    /// List the Raft peers: who leads, who votes.
    #[argh(subcommand, name = "list-peers")]
    pub struct ListPeersCmd {
        /// print JSON
        #[argh(switch)]
        json: bool,
        /// answer from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
    }
}

crate::wire::api_command! {
    /// Remove a server from the Raft peers (a dead one, or one retired).
    #[argh(subcommand, name = "remove-peer")]
    pub struct RemovePeerCmd {
        /// the peer's Raft id
        #[argh(option)]
        peer_id: Option<u64>,
        /// the peer's address (host:port)
        #[argh(option)]
        peer_address: Option<String>,
    }
}

/// Save or restore the region's state.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "snapshot")]
pub struct SnapshotCmd {
    #[argh(subcommand)]
    command: SnapshotSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum SnapshotSub {
    Save(SaveCmd),
    Restore(RestoreCmd),
}

crate::wire::api_command! {
    /// Save a consistent snapshot of the region's state to a file.
    #[argh(subcommand, name = "save")]
    pub struct SaveCmd {
        /// read from any server, possibly behind the leader
        #[argh(switch)]
        stale: bool,
        /// the file to write
        #[argh(positional)]
        file: PathBuf,
    }
}

crate::wire::api_command! {
    /// Replace the region's state with a saved snapshot.
    #[argh(subcommand, name = "restore")]
    pub struct RestoreCmd {
        /// the snapshot file
        #[argh(positional)]
        file: PathBuf,
    }
}

impl OperatorCmd {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            OperatorSub::Raft(RaftCmd {
                command: RaftSub::ListPeers(cmd),
            }) => cmd.run(),
            OperatorSub::Raft(RaftCmd {
                command: RaftSub::RemovePeer(cmd),
            }) => cmd.run(),
            OperatorSub::Snapshot(SnapshotCmd {
                command: SnapshotSub::Save(cmd),
            }) => cmd.run(),
            OperatorSub::Snapshot(SnapshotCmd {
                command: SnapshotSub::Restore(cmd),
            }) => cmd.run(),
        }
    }
}

fn peers_table(c: &RaftConfiguration) -> String {
    let mut rows = vec![
        ["Node", "ID", "Address", "State", "Voter"]
            .map(String::from)
            .to_vec(),
    ];
    for p in &c.peers {
        rows.push(vec![
            if p.name.is_empty() {
                "(unknown)".to_owned()
            } else {
                p.name.clone()
            },
            p.id.to_string(),
            p.address.clone(),
            if p.leader { "leader" } else { "follower" }.to_owned(),
            p.voter.to_string(),
        ]);
    }
    columns(&rows)
}

impl ListPeersCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let c: RaftConfiguration = remote.get(&with_query(
            "/v1/operator/raft/peers",
            &[remote::stale(self.stale)],
        ))?;
        if self.json {
            format::print_json(&c);
        } else {
            print!("{}", peers_table(&c));
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl RemovePeerCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let id = match (self.peer_id, &self.peer_address) {
            (Some(id), None) => id,
            (None, Some(addr)) => {
                let c: RaftConfiguration = remote.get("/v1/operator/raft/peers")?;
                c.peers
                    .iter()
                    .find(|p| p.address == *addr)
                    .map(|p| p.id)
                    .with_context(|| format!("no raft peer at address {addr}"))?
            }
            _ => anyhow::bail!("give exactly one of --peer-id or --peer-address"),
        };
        let _: IndexResponse =
            remote.send(Method::Delete, &format!("/v1/operator/raft/peer/{id}"), &())?;
        println!("Removed peer with id {id}");
        Ok(ExitCode::SUCCESS)
    }
}

impl SaveCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let remote = Remote::connect(&self.api_flags())?;
        let path = with_query("/v1/operator/snapshot", &[remote::stale(self.stale)]);
        let snap: StateSnapshot = remote.get(&path)?;
        if snap.data.is_empty() {
            anyhow::bail!("the server sent an empty snapshot");
        }
        crate::agent::write_atomic(&self.file, &snap.data)
            .with_context(|| format!("writing {}", self.file.display()))?;
        println!(
            "State file written to {} ({} bytes, index {})",
            self.file.display(),
            snap.data.len(),
            snap.index
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl RestoreCmd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let data = std::fs::read(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        let remote = Remote::connect(&self.api_flags())?;
        let body = wren_model::codec::to_cbor(&StateSnapshot { index: 0, data });
        let resp = remote.once(Method::Post, "/v1/operator/snapshot", &body)?;
        let done: IndexResponse = resp.decode().context("the answer to the restore")?;
        println!("Snapshot restored (index {})", done.index);
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RaftPeer;

    #[test]
    fn peers_show_who_leads() {
        let t = peers_table(&RaftConfiguration {
            peers: vec![
                RaftPeer {
                    id: 3,
                    name: "s1".into(),
                    address: "10.0.0.1:5684".into(),
                    leader: true,
                    voter: true,
                },
                RaftPeer {
                    id: 9,
                    name: String::new(),
                    address: "10.0.0.2:5684".into(),
                    leader: false,
                    voter: false,
                },
            ],
            term: 2,
            committed: 10,
        });
        assert_eq!(
            t,
            "Node       ID  Address        State     Voter\n\
             s1         3   10.0.0.1:5684  leader    true\n\
             (unknown)  9   10.0.0.2:5684  follower  false\n"
        );
    }

    #[test]
    fn remove_peer_takes_an_id_or_an_address() {
        let c = RemovePeerCmd::from_args(&["remove-peer"], &["--peer-id", "42"]).unwrap();
        assert_eq!(c.peer_id, Some(42));
        let c = RemovePeerCmd::from_args(&["remove-peer"], &["--peer-address", "a:1"]).unwrap();
        assert_eq!(c.peer_address.as_deref(), Some("a:1"));
    }
}
